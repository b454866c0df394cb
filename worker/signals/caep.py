"""The claims of the CAEP Security Event Tokens one decision causes.

Pure functions of the decision (its commands and findings) and a small
configuration: no clock, no randomness, so replay and the worker build the
same claims for the same input. Specs:

- RFC 8417 (Security Event Token): `iss`, `iat`, `jti`, `aud`, `txn`,
  `events`; https://www.rfc-editor.org/rfc/rfc8417
- OpenID Shared Signals Framework 1.0, section "Security Event Token
  Profile": explicit typing (`secevent+jwt`), the subject in `sub_id` (no
  `sub`), no `exp`, one event per SET, `txn` unique to the cause;
  https://openid.net/specs/openid-sharedsignals-framework-1_0.html
- RFC 9493 (Subject Identifiers for SETs) for the members of the complex
  subject; https://www.rfc-editor.org/rfc/rfc9493
- OpenID CAEP 1.0: `session-revoked`, `risk-level-change` and the optional
  claims `event_timestamp`, `initiating_entity`, `reason_admin`,
  `reason_user`; https://openid.net/specs/openid-caep-1_0.html

Which event for which decision:

- `revoke_session` -> `session-revoked` (initiating_entity `policy`).
- `require_reauthentication` (step-up, issue 9) -> `risk-level-change` with
  principal `SESSION`: CAEP has no "re-authenticate" event; a receiver that
  acts on risk (step-up, shorter token lifetime) is what a step-up asks for.
- An event whose findings are all alert-only -> `risk-level-change` too:
  the session's assessed risk rose although the policy did not act.
  `current_level` is the highest finding severity (LOW, MEDIUM, HIGH); no
  `previous_level`, which the spec says a receiver then treats as unknown.
- A revoked session gets nothing more (it gets no further commands either).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from detectors.model import Finding

CAEP = "https://schemas.openid.net/secevent/caep/event-type/"
SESSION_REVOKED = CAEP + "session-revoked"
RISK_LEVEL_CHANGE = CAEP + "risk-level-change"

REVOKE = "revoke_session"
STEP_UP = "require_reauthentication"

_LEVEL = {"informational": "LOW", "low": "LOW", "medium": "MEDIUM", "high": "HIGH",
          "critical": "HIGH", "fatal": "HIGH"}
_RANK = {"LOW": 1, "MEDIUM": 2, "HIGH": 3}


@dataclass(frozen=True, slots=True)
class SubjectConfig:
    """How subjects and the issuer are named (settings: signals_*)."""

    issuer: str
    audience: tuple[str, ...] = ()
    user_issuer: str | None = None
    """If set, users are `iss_sub` subjects with this `iss` (`{tenant}` is replaced);
    otherwise `opaque` ids. Use the IdP's issuer URL so receivers match their `sub`."""


@dataclass(frozen=True, slots=True)
class Signal:
    """One SET to sign: its claims and what the record around it says."""

    event_type: str
    session_id: str
    claims: dict[str, Any]
    command_id: str | None


def set_id(*parts: str) -> str:
    """A deterministic `jti`: the same cause gives the same id, so receivers de-duplicate."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def seconds(ms: int) -> int:
    """A NumericDate (RFC 7519): whole seconds since the epoch."""
    return ms // 1000


def subject(config: SubjectConfig, session_id: str, user_id: str | None,
            tenant: str | None) -> dict[str, Any]:
    """The SSF complex subject: the session as the IdP named it, its user and tenant."""
    sub: dict[str, Any] = {"format": "complex",
                           "session": {"format": "opaque", "id": session_id}}
    if user_id:
        if config.user_issuer:
            sub["user"] = {"format": "iss_sub",
                           "iss": config.user_issuer.replace("{tenant}", tenant or ""),
                           "sub": user_id}
        else:
            sub["user"] = {"format": "opaque", "id": user_id}
    if tenant:
        sub["tenant"] = {"format": "opaque", "id": tenant}
    return sub


def _envelope(config: SubjectConfig, jti: str, at_ms: int, txn: str,
              sub_id: dict[str, Any], event_type: str,
              event: dict[str, Any]) -> dict[str, Any]:
    claims: dict[str, Any] = {"iss": config.issuer, "jti": jti, "iat": seconds(at_ms)}
    if config.audience:
        claims["aud"] = config.audience[0] if len(config.audience) == 1 \
            else list(config.audience)
    claims.update({"txn": txn, "sub_id": sub_id, "events": {event_type: event}})
    return claims


def _reasons(reason: str, detail: str) -> dict[str, Any]:
    return {"reason_admin": {"en": f"{reason} ({detail})"}, "reason_user": {"en": reason}}


def _detail(findings: Sequence[Finding], policy_version: str | None) -> str:
    names = ", ".join(f.detector + (f"/{f.kind}" if f.kind else "") for f in findings)
    return f"{names}; policy {policy_version}" if policy_version else names


def risk_level(findings: Sequence[Finding]) -> str:
    """The highest finding severity as a CAEP risk level (unknown severities: MEDIUM)."""
    levels = [_LEVEL.get(f.severity.lower(), "MEDIUM") for f in findings] or ["MEDIUM"]
    return max(levels, key=_RANK.__getitem__)


def _command_signal(config: SubjectConfig, cmd: dict[str, Any], findings: Sequence[Finding],
                    at: int) -> Signal | None:
    """The SET of one command; `at` is the decision's time (the command's issued_at)."""
    kind = cmd.get("type")
    if kind not in (REVOKE, STEP_UP):
        return None
    sub_id = subject(config, cmd["session_id"], cmd.get("user_id"), cmd.get("tenant"))
    detail = _detail(findings, cmd.get("policy_version"))
    reason = str(cmd.get("reason") or "Session policy violation")
    event: dict[str, Any]
    if kind == REVOKE:
        event_type = SESSION_REVOKED
        event = {"initiating_entity": "policy", **_reasons(reason, detail),
                 "event_timestamp": seconds(at)}
    else:
        event_type = RISK_LEVEL_CHANGE
        event = {"principal": "SESSION", "current_level": risk_level(findings),
                 "risk_reason": _risk_reason(findings), "initiating_entity": "policy",
                 **_reasons(reason, detail), "event_timestamp": seconds(at)}
    claims = _envelope(config, set_id(cmd["command_id"], event_type), at,
                       str(cmd["cause_event_id"]), sub_id, event_type, event)
    return Signal(event_type, cmd["session_id"], claims, cmd["command_id"])


def _risk_reason(findings: Sequence[Finding]) -> str:
    return ",".join(dict.fromkeys(
        (f.detector + (f"_{f.kind}" if f.kind else "")).upper() for f in findings)) \
        or "SESSION_POLICY"


def signals_for(config: SubjectConfig, commands: Sequence[dict[str, Any]],
                findings: Sequence[Finding], *, event_id: str, session_id: str,
                user_id: str | None, tenant: str | None, occurred_at: int,
                policy_version: str | None = None) -> list[Signal]:
    """The SETs of one decision, in a fixed order (commands first)."""
    out = [s for cmd in commands
           if (s := _command_signal(config, cmd, findings, occurred_at)) is not None]
    if out or not findings or any(f.action != "alert" for f in findings):
        return out
    # Alert-only findings: the session's risk changed, the policy did not act.
    # No reason_user: the user is asked to do nothing (the policy's reason
    # text, e.g. "Login again", describes the action that was not taken).
    event = {"principal": "SESSION", "current_level": risk_level(findings),
             "risk_reason": _risk_reason(findings), "initiating_entity": "policy",
             "reason_admin": {"en": f"{findings[0].reason} "
                                    f"({_detail(findings, policy_version)}; alert only)"},
             "event_timestamp": seconds(occurred_at)}
    claims = _envelope(config, set_id(event_id, RISK_LEVEL_CHANGE), occurred_at, event_id,
                       subject(config, session_id, user_id, tenant), RISK_LEVEL_CHANGE,
                       event)
    return [Signal(RISK_LEVEL_CHANGE, session_id, claims, None)]
