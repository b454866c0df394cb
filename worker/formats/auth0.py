"""Auth0 log events (log streams, Management API export, EventBridge) -> SessionEvent.

Accepted shapes, each decoded to the inner log event:
- custom webhook stream: ``{"log_id", "data": {...}}`` (also with Panther ``p_*`` keys);
- Amazon EventBridge: ``{"detail": {"log_id", "data": {...}},
  "source": "aws.partner/auth0.com/..."}``;
- a bare log event ``{"date", "type", ...}`` (``/api/v2/logs``: ``log_id`` or ``_id``);
- Filebeat's ``{"json": <any of the above>}``.

Only events that show a session being used are session activity; everything
else (failures, management API, signups, Guardian, limits...) is a Skip whose
reason names the type, so operators can see what the stream carries.
"""

from __future__ import annotations

from typing import Any

from detectors.model import EventType, SessionEvent, SessionInfo

# The dispatcher defines Adapter before it imports the vendor modules.
from worker.formats import Adapter
from worker.formats.base import (
    InvalidRecord,
    Outcome,
    Skip,
    as_dict,
    opt_str,
    opt_text,
    optional_ip,
    require_time,
    stable_id,
)

SOURCE = "auth0"

# Auth0 log type codes that carry (or may carry) a session, and what they mean here.
# https://auth0.com/docs/deploy-monitor/logs/log-event-type-codes
SESSION_TYPES: dict[str, EventType] = {
    "s": EventType.LOGIN,  # successful login (also SSO into another app: same session_id)
    "ssa": EventType.SILENT_AUTH,  # successful silent authentication (prompt=none)
    "slo": EventType.LOGOUT,  # user successfully logged out
    "scoa": EventType.INTERACTION,  # successful cross-origin authentication
    # Token endpoint exchanges: the session is present when the token is bound to one
    # (refresh tokens carry details.refresh_token.session_id).
    "sertft": EventType.TOKEN_REFRESH,  # refresh token for access token
    "seacft": EventType.TOKEN_REFRESH,  # authorization code for access token
    "sepft": EventType.TOKEN_REFRESH,  # password for access token
    "sepotpft": EventType.TOKEN_REFRESH,  # passwordless OTP for access token
    "seotpft": EventType.TOKEN_REFRESH,  # password + OTP challenge for access token
    "seoobft": EventType.TOKEN_REFRESH,  # password + OOB challenge for access token
    "sercft": EventType.TOKEN_REFRESH,  # password + MFA recovery code for access token
    "sede": EventType.TOKEN_REFRESH,  # device code for access token
    "sens": EventType.TOKEN_REFRESH,  # native social login exchange
    "ciba_exchange_succeeded": EventType.TOKEN_REFRESH,  # CIBA auth_req_id for access token
}
# Not in the table and worth saying why: seccft (client credentials: machine to
# machine, never a user session), srrt (refresh token revoked: an admin/app action,
# not the session's device), w (login warnings), sapi/mgmt_api_read (management API).

_EVENTBRIDGE_SOURCE = "aws.partner/auth0.com"


def _event_of(
    record: dict[str, Any], unwrap: bool = True
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """(log event, its envelope) for any accepted shape, or None when not Auth0."""
    detail = record.get("detail")
    if isinstance(detail, dict) and (
        isinstance(detail.get("data"), dict)
        or str(record.get("source", "")).startswith(_EVENTBRIDGE_SOURCE)
    ):
        data = detail.get("data")
        return (data if isinstance(data, dict) else detail), detail
    data = record.get("data")
    if isinstance(data, dict) and isinstance(data.get("type"), str):
        return data, record
    if isinstance(record.get("type"), str) and (
        "date" in record or "log_id" in record or "_id" in record
    ):
        return record, record
    inner = record.get("json")
    if unwrap and isinstance(inner, dict):  # Filebeat's decoding wrapper, one level only
        return _event_of(inner, unwrap=False)
    return None


def looks_like(record: dict[str, Any]) -> bool:
    """An Auth0 log event in any accepted envelope."""
    return _event_of(record) is not None


def session_id_of(event: dict[str, Any]) -> str | None:
    """Where Auth0 puts the session id, by log type.

    ``details.session_id`` for s/ssa/slo; ``details.refresh_token.session_id`` for
    sertft; silent auth also lists it per prompt.
    """
    details = as_dict(event.get("details"))
    for candidate in (
        details.get("session_id"),
        as_dict(details.get("refresh_token")).get("session_id"),
        event.get("session_id"),
    ):
        sid = opt_text(candidate)
        if sid is not None:
            return sid
    prompts = details.get("prompts")
    if isinstance(prompts, list):
        for prompt in prompts:
            sid = opt_text(as_dict(prompt).get("session_id"))
            if sid is not None:
                return sid
    return None


def tenant_of(event: dict[str, Any]) -> str:
    """``tenant_name``, else the tenant label of an ``*.auth0.com`` hostname, else the host.

    A custom domain cannot be mapped back to the tenant name, so it is kept whole.
    """
    name = opt_text(event.get("tenant_name"))
    if name is not None:
        return name
    host = opt_text(event.get("hostname"))
    if host is None:
        return ""
    host = host.lower()
    if host.endswith(".auth0.com"):
        return host.split(".", 1)[0]
    return host


def event_id_of(record: dict[str, Any], event: dict[str, Any], envelope: dict[str, Any]) -> str:
    """``log_id`` (event, envelope or outer record), ``_id``, else a hash of the record.

    The hash makes re-deliveries of an id-less record dedupe in the engine.
    """
    for candidate in (
        event.get("log_id"),
        envelope.get("log_id"),
        record.get("log_id"),
        event.get("_id"),
    ):
        log_id = opt_text(candidate)
        if log_id is not None:
            return log_id
    return stable_id(SOURCE, event)


def normalize(record: dict[str, Any]) -> Outcome:
    """One Auth0 log record -> SessionEvent, Skip, or InvalidRecord raised."""
    found = _event_of(record)
    if found is None:
        raise InvalidRecord("not an Auth0 log event: no data/detail object or type field")
    event, envelope = found
    kind = event.get("type")
    if not isinstance(kind, str) or not kind:
        raise InvalidRecord("type missing or not a string")
    mapped = SESSION_TYPES.get(kind)
    if mapped is None:
        return Skip(f"auth0:not session activity: {kind[:64]}", SOURCE)
    session_id = session_id_of(event)
    if session_id is None:
        return Skip(f"auth0:no session id: {kind}", SOURCE)
    ip = optional_ip(event.get("ip"), "ip")
    if ip is None:
        return Skip(f"auth0:no client IP: {kind}", SOURCE)
    level, reasons = risk_of(as_dict(as_dict(event.get("details")).get("riskAssessment")))
    return SessionEvent(
        event_id=event_id_of(record, event, envelope),
        type=mapped,
        occurred_at=require_time(event.get("date"), "date"),
        session=SessionInfo(id=session_id),
        ip=ip,
        tenant=tenant_of(event),
        user_id=opt_text(event.get("user_id")),
        client_id=opt_text(event.get("client_id")),
        connection=opt_text(event.get("connection")),
        organization=opt_text(event.get("organization_id"))
        or opt_text(event.get("organization_name")),
        user_agent=opt_str(event.get("user_agent")),
        source=SOURCE,
        idp_risk=level,
        idp_risk_reasons=reasons,
    )


# Adaptive MFA's confidence that the login is the user's, as a risk level.
# https://auth0.com/docs/secure/multi-factor-authentication/adaptive-mfa/adaptive-mfa-log-events
_RISK_OF_CONFIDENCE = {"low": "high", "medium": "medium", "high": "low"}


def risk_of(assessment: dict[str, Any]) -> tuple[str | None, tuple[str, ...]]:
    """Auth0's `details.riskAssessment` as (risk level, the assessments that drove it).

    Confidence `low` means the login does not match the user's patterns, so
    high risk; `neutral` says nothing. The reasons are the assessments
    (UntrustedIP, NewDevice, ImpossibleTravel) with a low confidence.
    """
    level = _RISK_OF_CONFIDENCE.get(str(assessment.get("confidence", "")).lower())
    parts = as_dict(assessment.get("assessments"))
    reasons = tuple(name[:64] for name, value in parts.items()
                    if str(as_dict(value).get("confidence", "")).lower() == "low")
    return level, reasons[:8]


ADAPTER = Adapter(SOURCE, looks_like, normalize)
