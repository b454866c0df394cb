"""Configuration from the environment (prefix SESSIONWARDEN_) and CLI flags.

Defaults run out of the box on the small test databases bundled in `data/`;
production points the database paths at its own GeoLite2/GeoIP2 files.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


class Settings(BaseSettings):
    """All knobs of replay, produce and the worker."""

    model_config = SettingsConfigDict(env_prefix="SESSIONWARDEN_", env_file=None,
                                      extra="ignore")

    # Decision inputs
    policy_file: Path | None = Field(default=None, description="policy TOML; built-in if unset")
    input_format: str = Field(default="auto", description="auto|native|auth0|okta|keycloak")
    city_db: str | None = str(DATA_DIR / "mmdb" / "GeoIP2-City-Test.mmdb")
    asn_db: str | None = str(DATA_DIR / "mmdb" / "GeoLite2-ASN-Test.mmdb")
    anonymous_db: str | None = str(DATA_DIR / "mmdb" / "GeoIP2-Anonymous-IP-Test.mmdb")
    pyasn_db: str | None = str(DATA_DIR / "pyasn" / "ipasn_20140513.dat.gz")

    # Kafka
    broker: str = "kafka://localhost:9092"
    app_id: str = Field(default="sessionwarden", description="Faust app id = consumer group")
    input_topic: str = "session-events"
    commands_topic: str = "session-commands"
    audit_topic: str = "session-audit"
    alerts_topic: str = "session-alerts"
    dlq_topic: str = "session-events-dlq"
    topic_partitions: int = 4
    topic_replication: int = 1
    security_protocol: str = Field(default="PLAINTEXT",
                                   description="PLAINTEXT|SSL|SASL_PLAINTEXT|SASL_SSL")
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: str | None = None
    ssl_cafile: str | None = None
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None

    # Faust / state
    store: str = "rocksdb://"
    data_dir: Path = Path(".sessionwarden-data")
    web_port: int = 6066
    web_host: str = "0.0.0.0"
    web_enabled: bool = True
    batch_size: int = 1000
    batch_timeout: float = 0.05
    broker_session_timeout: float = 30.0
    broker_heartbeat_interval: float = 3.0
    processing_guarantee: str = Field(
        default="at_least_once",
        description="only at_least_once: outputs are ordered before state (docs/worker.md)")
    table_standby_replicas: int = 1
    commit_interval: float = Field(default=2.8, description="seconds between offset commits")
    max_message_bytes: int = Field(
        default=4 * 1024 * 1024,
        description="largest record accepted: producer request size and topic max.message.bytes"
                    " of the input and dead-letter topics")
    producer_batch_bytes: int = Field(default=256 * 1024,
                                      description="size of one produced record batch")
    producer_request_timeout: float = Field(
        default=60.0, description="seconds before an undeliverable output stops the worker")
    create_topics: bool = Field(default=True,
                                description="create missing topics at worker start-up")
    log_level: str = "INFO"
    log_format: str = Field(default="json", description="json|text")

    # Enforcer (`sessionwarden enforce`, docs/enforcement.md)
    results_topic: str = Field(default="session-enforcement",
                               description="one result per command (key = session id)")
    enforce_state_topic: str = Field(default="session-enforcement-state",
                                     description="compacted intent/done/held log of commands")
    enforce_group: str = Field(default="sessionwarden-enforcer",
                               description="consumer group of the enforcer")
    targets_file: Path | None = Field(default=None,
                                      description="TOML: IdP target and credentials per tenant")
    enforce_batch_size: int = Field(default=500, description="max commands per batch")
    enforce_web_port: int = 6067
    enforce_web_host: str = "127.0.0.1"

    # Keycloak admin-events ingest (`sessionwarden ingest keycloak`)
    ingest_poll_interval: float = Field(default=1.0, description="seconds between polls")
    ingest_overlap_ms: int = Field(
        default=5000, description="re-read this far behind the cursor: late-committed events")
