"""What every IdP client offers the enforcer, and the types they exchange.

Why a protocol: the enforcer's loop, idempotency and rails must not know
which IdP is behind a tenant; each client says which command types it can
apply and maps one command onto its admin API.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol


class Outcome(StrEnum):
    """The `outcome` of a result on `session-enforcement` (DESIGN.md Additions)."""

    APPLIED = "applied"
    ALREADY_GONE = "already_gone"
    UNSUPPORTED = "unsupported"
    FAILED = "failed"
    SKIPPED_DRY_RUN = "skipped_dry_run"
    HELD_BY_BREAKER = "held_by_breaker"


COMMAND_TYPES = ("revoke_session", "require_reauthentication", "set_expires_at",
                 "set_idle_expires_at", "set_cookie_mode")
"""Every command type the engine emits (DESIGN.md, issue 9's step_up included)."""
REVOKE_TYPES = frozenset({"revoke_session"})
"""Types that end a session: the ones the revocation rate limit and breaker govern."""


@dataclass(frozen=True, slots=True)
class Command:
    """One validated command from `session-commands`."""

    command_id: str
    type: str
    tenant: str
    session_id: str
    user_id: str | None
    issued_at: str | None
    cause_event_id: str | None
    fields: dict[str, Any] = field(default_factory=dict)
    """The whole record as received (type-specific fields: `expires_at`, `mode`, ...)."""

    @property
    def preserve_refresh_tokens(self) -> bool:
        return self.fields.get("preserve_refresh_tokens") is True


@dataclass(frozen=True, slots=True)
class Call:
    """One HTTP exchange with the IdP (for results, logs and the drill's audit)."""

    method: str
    path: str
    status: int | None
    """None: no response (connection error, timeout)."""


@dataclass(slots=True)
class ApplyResult:
    """What applying one command at the IdP came to."""

    outcome: Outcome
    http_status: int | None = None
    attempts: int = 0
    reason: str | None = None
    calls: list[Call] = field(default_factory=list)


class IdpError(Exception):
    """A call that could not be completed (after retries); the result says `failed`."""

    def __init__(self, message: str, status: int | None = None, attempts: int = 0) -> None:
        super().__init__(message)
        self.status = status
        self.attempts = attempts


class IdpClient(Protocol):
    """An IdP admin-API client for one tenant's target."""

    kind: str
    """`keycloak`, `auth0` or `okta`."""
    target: str
    """A printable name of the target (no secrets), e.g. `keycloak:https://id.example/acme`."""
    supported: frozenset[str]
    """Command types this client can apply; anything else is `unsupported`."""

    async def apply(self, command: Command) -> ApplyResult:
        """Apply one command (retries included); never raises for IdP answers."""

    async def session_alive(self, command: Command) -> bool | None:
        """Whether the command's session still exists; None when this cannot be told.

        Used only for a command whose earlier attempt may have reached the IdP
        before a crash (an intent without a result): if the session is gone,
        the revoke is not sent again.
        """

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
