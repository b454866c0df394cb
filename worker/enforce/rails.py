"""The safety rails, from the policy file's `[enforcement]` section.

Why in the policy: how aggressively a tenant's sessions may be revoked is a
decision of the same people, reviewed the same way, as what triggers a
revoke. It is validated here (pydantic, unknown keys rejected) and is not
part of the decision policy's hash: changing a rail changes no decision.

    [enforcement]
    mode = "enforce"                  # enforce | dry_run (shadow)
    revocations_per_second = 20.0     # token bucket per tenant
    revocation_burst = 50
    [enforcement.breaker]
    window_seconds = 300
    threshold = 0.2                   # share of the window's sessions revoked
    min_sessions = 50                 # below this many sessions, never trips
    [enforcement.tenants.acme]        # any of the above, per tenant
    mode = "dry_run"
    [enforcement.tenants.acme.breaker]
    threshold = 0.5
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from detectors.policy import PolicyError

Mode = Literal["enforce", "dry_run"]


class BreakerConfig(BaseModel):
    """The circuit breaker of one tenant (see docs/enforcement.md for the denominator)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool = True
    window_seconds: float = Field(default=300.0, gt=0, le=86400)
    threshold: float = Field(default=0.2, gt=0, le=1)
    min_sessions: int = Field(default=50, ge=1)


StepUp = Literal["end_session", "report"]
"""How a `require_reauthentication` reaches an IdP that cannot challenge one session:
`end_session` ends the IdP session (its refresh tokens stay), so the next use of
the session means a new login; `report` applies nothing (result `unsupported`)."""


class Rails(BaseModel):
    """The resolved rails of one tenant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode = "enforce"
    step_up: StepUp = "end_session"
    revocations_per_second: float = Field(default=20.0, gt=0)
    revocation_burst: int = Field(default=50, ge=1)
    breaker: BreakerConfig = BreakerConfig()


class _BreakerOverride(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    enabled: bool | None = None
    window_seconds: float | None = Field(default=None, gt=0, le=86400)
    threshold: float | None = Field(default=None, gt=0, le=1)
    min_sessions: int | None = Field(default=None, ge=1)


class _TenantOverride(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode | None = None
    step_up: StepUp | None = None
    revocations_per_second: float | None = Field(default=None, gt=0)
    revocation_burst: int | None = Field(default=None, ge=1)
    breaker: _BreakerOverride | None = None


class EnforcementPolicy(BaseModel):
    """Defaults plus per-tenant overrides; `for_tenant` resolves one tenant."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    mode: Mode = "enforce"
    step_up: StepUp = "end_session"
    revocations_per_second: float = Field(default=20.0, gt=0)
    revocation_burst: int = Field(default=50, ge=1)
    breaker: BreakerConfig = BreakerConfig()
    tenants: dict[str, _TenantOverride] = Field(default_factory=dict)

    def for_tenant(self, tenant: str) -> Rails:
        base: dict[str, Any] = {"mode": self.mode, "step_up": self.step_up,
                                "revocations_per_second": self.revocations_per_second,
                                "revocation_burst": self.revocation_burst}
        breaker = self.breaker.model_dump()
        override = self.tenants.get(tenant)
        if override is not None:
            base.update(override.model_dump(exclude_none=True, exclude={"breaker"}))
            if override.breaker is not None:
                breaker.update(override.breaker.model_dump(exclude_none=True))
        return Rails(**base, breaker=BreakerConfig(**breaker))


def enforcement_from_mapping(raw: object) -> EnforcementPolicy:
    """Validate an `[enforcement]` table; PolicyError with every problem on one line."""
    try:
        return EnforcementPolicy.model_validate(raw if raw is not None else {})
    except ValidationError as exc:
        problems = "; ".join(f"enforcement.{'.'.join(map(str, e['loc']))}: {e['msg']}"
                             for e in exc.errors())
        raise PolicyError(problems) from None


def load_enforcement(path: str | Path | None) -> EnforcementPolicy:
    """The `[enforcement]` section of a policy file (defaults when absent or no file)."""
    if path is None or str(path) == "":
        return EnforcementPolicy()
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"policy file {path} is not valid TOML: {exc}") from None
    try:
        return enforcement_from_mapping(raw.get("enforcement"))
    except PolicyError as exc:
        raise PolicyError(f"policy file {path}: {exc}") from None
