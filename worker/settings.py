"""Configuration from the environment (prefix SESSIONWARDEN_) and CLI flags.

Two layers, so that each command validates exactly what it uses:
`DecisionSettings` holds the decision inputs (policy, input format,
databases) that replay needs; `Settings` adds Kafka, state and the web
server for the worker and `produce`. A bad worker-only variable therefore
never stops a replay, and every choice is a `Literal`, so a typo is an error
naming the variable instead of a silent default. Secrets are `SecretStr`:
they never show in a repr, a log line or an error message.

Database paths left unset mean "the bundled test database", which exists
only in a source checkout (see `worker.enrich.resolve_database`): an
installed package never runs on test data by accident.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import BeforeValidator, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


def _upper(value: object) -> object:
    """Case-insensitive choices people type either way (sasl_plaintext, info)."""
    return value.strip().upper() if isinstance(value, str) else value


def _lower(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


InputFormat = Literal["auto", "native", "auth0", "okta", "keycloak"]
SecurityProtocol = Annotated[Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"],
                             BeforeValidator(_upper)]
SaslMechanism = Annotated[Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER"],
                          BeforeValidator(_upper)]
Store = Literal["rocksdb://", "memory://"]
LogFormat = Annotated[Literal["json", "text"], BeforeValidator(_lower)]
LogLevel = Annotated[Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"],
                     BeforeValidator(_upper)]


class DecisionSettings(BaseSettings):
    """What a decision depends on: policy, input format and enrichment databases."""

    model_config = SettingsConfigDict(env_prefix="SESSIONWARDEN_", env_file=None,
                                      extra="ignore", validate_default=True)

    policy_file: Path | None = Field(default=None, description="policy TOML; built-in if unset")
    input_format: InputFormat = Field(default="auto", description="force one input format")
    city_db: str | None = Field(
        default=None, description="MaxMind-format City db; unset = bundled test db; '' = none")
    asn_db: str | None = Field(
        default=None, description="MaxMind-format ASN db; unset = bundled test db; '' = none")
    anonymous_db: str | None = Field(
        default=None, description="Anonymous-IP db; unset = bundled test db; '' = none")
    pyasn_db: str | None = Field(
        default=None, description="pyasn IPASN file; unset = bundled 2014 table; '' = none")
    netclass_dir: str | None = Field(
        default=None, description="hosting/mobile ASN lists (docs/netclass.md); unset = the "
                                  "source checkout's data/netclass; '' = none")
    isp_db: str | None = Field(default=None,
                               description="MaxMind-format GeoIP2-ISP database (optional)")
    connection_type_db: str | None = Field(
        default=None, description="MaxMind-format GeoIP2-Connection-Type database (optional)")

    # Session signals: CAEP Security Event Tokens, made by replay and the worker alike
    signals_enabled: bool | None = Field(
        default=None, description="None: on when a signing key is set (replay: always)")
    signals_issuer: str = Field(default="https://sessionwarden.invalid/",
                                description="iss of the SETs: the transmitter's https URL")
    signals_audience: str | None = Field(default=None,
                                         description="aud of the SETs (comma-separated)")
    signals_user_issuer: str | None = Field(
        default=None, description="IdP issuer URL ({tenant} allowed): users become iss_sub")
    signing_key_file: Path | None = Field(default=None, description="RS256 private key (PEM)")
    signing_key: SecretStr | None = Field(default=None,
                                          description="RS256 private key as PEM text")
    signing_kid: str | None = Field(default=None, description="kid; default RFC 7638 thumbprint")


class Settings(DecisionSettings):
    """All knobs of the worker and `produce` (and, through the base, of replay)."""

    # Kafka
    broker: str = "kafka://localhost:9092"
    app_id: str = Field(default="sessionwarden", description="Faust app id = consumer group")
    input_topic: str = "session-events"
    commands_topic: str = "session-commands"
    audit_topic: str = "session-audit"
    alerts_topic: str = "session-alerts"
    dlq_topic: str = "session-events-dlq"
    topic_partitions: int = Field(default=4, ge=1)
    topic_replication: int = Field(default=1, ge=1)
    security_protocol: SecurityProtocol = "PLAINTEXT"
    sasl_mechanism: SaslMechanism | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_keyfile_password: SecretStr | None = None
    # SASL/OAUTHBEARER (docs/worker.md "Managed Kafka services"; worker/kafka/auth/)
    sasl_oauth_token_provider: str | None = Field(
        default=None, description="OAUTHBEARER token source: oidc | aws-msk-iam | module:attribute")
    sasl_oauth_token_url: str | None = Field(
        default=None, description="oidc: the IdP's token endpoint (client-credentials grant)")
    sasl_oauth_client_id: str | None = None
    sasl_oauth_client_secret: SecretStr | None = None
    sasl_oauth_scope: str | None = Field(default=None, description="oidc: scope to request")
    sasl_oauth_client_auth: Literal["basic", "post"] = Field(
        default="basic", description="oidc: client_secret_basic (header) or _post (form body)")
    sasl_oauth_extensions: str | None = Field(
        default=None, description="oidc: SASL extensions key=value,key=value (Confluent Cloud: "
                                  "logicalCluster=lkc-...,identityPoolId=pool-...)")
    sasl_oauth_timeout: float = Field(default=10.0, gt=0,
                                      description="oidc: seconds per token request")
    sasl_oauth_aws_region: str | None = Field(
        default=None, description="aws-msk-iam: the cluster's region (default: AWS_REGION)")
    sasl_oauth_aws_profile: str | None = Field(
        default=None, description="aws-msk-iam: named AWS profile instead of the default chain")
    sasl_oauth_aws_role_arn: str | None = Field(
        default=None, description="aws-msk-iam: IAM role to assume for signing")
    startup_timeout: float = Field(
        default=60.0, gt=0,
        description="seconds to keep retrying an unreachable broker at start-up before exit 2")

    # Faust / state
    store: Store = "rocksdb://"
    data_dir: Path = Path(".sessionwarden-data")
    web_port: int = Field(default=6066, ge=0, le=65535)
    web_host: str = Field(default="127.0.0.1",
                          description="bind address of /health and /metrics (containers: 0.0.0.0)")
    web_enabled: bool = True
    batch_size: int = Field(default=1000, ge=1)
    batch_timeout: float = Field(default=0.05, gt=0)
    fetch_max_wait: float = Field(
        default=0.1, gt=0, le=5,
        description="seconds the broker may hold a fetch that has no new records (Faust's 1.5 s"
                    " stalls the input behind a fetch of idle partitions; docs/worker.md)")
    broker_session_timeout: float = Field(default=30.0, gt=0)
    broker_heartbeat_interval: float = Field(default=3.0, gt=0)
    processing_guarantee: Literal["at_least_once"] = Field(
        default="at_least_once",
        description="only at_least_once: outputs are ordered before state (docs/worker.md)")
    table_standby_replicas: int = Field(default=1, ge=0)
    commit_interval: float = Field(default=2.8, gt=0,
                                   description="seconds between offset commits")
    max_message_bytes: int = Field(
        default=4 * 1024 * 1024, ge=65536,
        description="largest record accepted: producer request size and topic max.message.bytes"
                    " of the input and dead-letter topics")
    max_output_bytes: int = Field(
        default=1024 * 1024, ge=65536,
        description="largest output record (commands, audit, alerts): max.message.bytes of "
                    "those topics; a decision whose record would be larger is dead-lettered")
    producer_batch_bytes: int = Field(default=256 * 1024, ge=16384,
                                      description="size of one produced record batch")
    producer_request_timeout: float = Field(
        default=60.0, gt=0, description="seconds before an undeliverable output stops the worker")
    create_topics: bool = Field(default=True,
                                description="create missing topics at worker start-up")
    log_level: LogLevel = "INFO"
    log_format: LogFormat = Field(default="json", description="json|text")

    # Session signals topics and RFC 8935 push delivery (docs/outputs.md, worker/signals/)
    signals_topic: str = "session-signals"
    signals_dlq_topic: str = Field(default="session-signals-dlq",
                                   description="SETs a receiver rejected (push-signals)")
    push_endpoint: str | None = Field(default=None,
                                      description="SSF receiver URL for RFC 8935 push")
    push_authorization: SecretStr | None = Field(
        default=None, description="Authorization header value sent to the receiver")
    push_group: str | None = Field(default=None,
                                   description="consumer group of push-signals (app_id-push)")
    push_timeout: float = Field(default=10.0, gt=0)
    push_max_attempts: int = Field(default=8, ge=1, description="tries per SET before exiting")
    push_backoff: float = Field(default=0.5, gt=0, description="first retry delay, doubling")
    push_backoff_max: float = Field(default=30.0, gt=0)

    # Enforcer (`sessionwarden enforce`, docs/enforcement.md)
    results_topic: str = Field(default="session-enforcement",
                               description="one result per command (key = session id)")
    enforce_state_topic: str = Field(default="session-enforcement-state",
                                     description="compacted intent/done/held log of commands")
    enforce_group: str = Field(default="sessionwarden-enforcer",
                               description="consumer group of the enforcer")
    targets_file: Path | None = Field(default=None,
                                      description="TOML: IdP target and credentials per tenant")
    enforce_batch_size: int = Field(default=500, ge=1, description="max commands per batch")
    enforce_web_port: int = Field(default=6067, ge=0, le=65535)
    enforce_web_host: str = "127.0.0.1"

    # Keycloak admin-events ingest (`sessionwarden ingest keycloak`)
    ingest_poll_interval: float = Field(default=1.0, gt=0, description="seconds between polls")
    ingest_overlap_ms: int = Field(
        default=5000, ge=0, description="re-read this far behind the cursor: late-committed events")
