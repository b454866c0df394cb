"""Which IdP serves which tenant, and with which credentials (the targets file).

Why not in the policy: targets and credentials are deployment facts, owned
by whoever runs the enforcer, and must never be copied around with a policy.
The file names the environment variables (or files) that hold the secrets;
secrets are read at start-up into `SecretStr` and never logged or printed.

    [tenants.acme]
    kind = "keycloak"
    base_url = "https://id.example.com"
    realm = "acme"
    client_id = "sessionwarden-enforcer"
    client_secret_env = "ACME_KEYCLOAK_SECRET"
    concurrency = 8                   # parallel calls to this target

    [tenants."example-eu"]
    kind = "auth0"
    domain = "example.eu.auth0.com"
    client_id = "..."
    client_secret_env = "AUTH0_EXAMPLE_SECRET"

    [tenants.corp]
    kind = "okta"
    org_url = "https://corp.okta.com"
    client_id = "..."
    private_key_file = "/run/secrets/okta-enforcer.pem"   # or private_key_env
    key_id = "..."
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from worker.idp.base import IdpClient
from worker.idp.http import RetryPolicy


class TargetsError(ValueError):
    """The targets file is unusable (the CLI prints it and exits 2)."""


class _Common(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    concurrency: int = Field(default=8, ge=1, le=256)
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_base_seconds: float = Field(default=0.2, gt=0, le=60)
    backoff_max_seconds: float = Field(default=10.0, gt=0, le=600)

    def retry(self) -> RetryPolicy:
        return RetryPolicy(max_attempts=self.max_attempts, base_delay=self.backoff_base_seconds,
                           max_delay=self.backoff_max_seconds)


def _secret(env: Mapping[str, str], variable: str | None, file: str | None,
            what: str) -> SecretStr:
    if variable:
        value = env.get(variable)
        if not value:
            raise TargetsError(f"{what}: environment variable {variable} is not set")
        return SecretStr(value)
    if file:
        try:
            return SecretStr(Path(file).read_text(encoding="utf-8").strip())
        except OSError as exc:
            raise TargetsError(f"{what}: cannot read {file}: {exc.strerror}") from None
    raise TargetsError(f"{what}: no secret configured")


class KeycloakTarget(_Common):
    kind: Literal["keycloak"]
    base_url: str
    realm: str
    client_id: str
    client_secret_env: str | None = None
    client_secret_file: str | None = None

    def build(self, env: Mapping[str, str], tenant: str, **http: Any) -> IdpClient:
        from worker.idp.keycloak import KeycloakClient  # noqa: PLC0415

        secret = _secret(env, self.client_secret_env, self.client_secret_file,
                         f"target {tenant} client secret")
        return KeycloakClient(self.base_url, self.realm, self.client_id,
                              secret.get_secret_value(), concurrency=self.concurrency,
                              timeout=self.timeout_seconds, retry=self.retry(), **http)


class Auth0Target(_Common):
    kind: Literal["auth0"]
    concurrency: int = Field(default=4, ge=1, le=256)
    domain: str
    client_id: str
    client_secret_env: str | None = None
    client_secret_file: str | None = None

    def build(self, env: Mapping[str, str], tenant: str, **http: Any) -> IdpClient:
        from worker.idp.auth0 import Auth0Client  # noqa: PLC0415

        secret = _secret(env, self.client_secret_env, self.client_secret_file,
                         f"target {tenant} client secret")
        return Auth0Client(self.domain, self.client_id, secret.get_secret_value(),
                           concurrency=self.concurrency, timeout=self.timeout_seconds,
                           retry=self.retry(), **http)


class OktaTarget(_Common):
    kind: Literal["okta"]
    concurrency: int = Field(default=4, ge=1, le=256)
    org_url: str
    client_id: str
    key_id: str | None = None
    private_key_env: str | None = None
    private_key_file: str | None = None

    def build(self, env: Mapping[str, str], tenant: str, **http: Any) -> IdpClient:
        from worker.idp.okta import OktaClient  # noqa: PLC0415

        key = _secret(env, self.private_key_env, self.private_key_file,
                      f"target {tenant} private key")
        return OktaClient(self.org_url, self.client_id, key.get_secret_value(),
                          key_id=self.key_id, concurrency=self.concurrency,
                          timeout=self.timeout_seconds, retry=self.retry(), **http)


Target = Annotated[KeycloakTarget | Auth0Target | OktaTarget, Field(discriminator="kind")]


class TargetsFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    tenants: dict[str, Target] = Field(default_factory=dict)


def load_targets(path: str | Path) -> TargetsFile:
    """Read and validate a targets file (secrets are resolved later, in `build_clients`)."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise TargetsError(f"cannot read targets file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise TargetsError(f"targets file {path} is not valid TOML: {exc}") from None
    try:
        return TargetsFile.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}"
                             for e in exc.errors())
        raise TargetsError(f"targets file {path}: {problems}") from None


def build_clients(targets: TargetsFile, env: Mapping[str, str] | None = None,
                  **http: Any) -> dict[str, IdpClient]:
    """One IdP client per tenant; secrets come from `env` (default: os.environ)."""
    source = os.environ if env is None else env
    return {tenant: target.build(source, tenant, **http)
            for tenant, target in targets.tenants.items()}
