"""Okta System Log ``LogEvent`` -> SessionEvent.

Accepted shapes: a bare LogEvent (System Log API, Log Streaming, SIEM exports),
an Amazon EventBridge envelope (``{"detail": <LogEvent>, "source":
"aws.partner/okta.com/..."}``) and an event hook delivery (``{"eventType":
"com.okta.event_hook", "data": {"events": [...]}}``, split by `split`).

Session id: ``authenticationContext.externalSessionId``, the id Okta uses to
correlate events of one sign-in session. Okta Identity Engine logs the sign-in
steps (user.session.start, policy.evaluate_sign_on...) under a pre-session id
(seen as ``idx...``) and the events after sign-in under the session's own id;
one record cannot link the two, so the post-login session gets its baseline
from its first event (the engine supports that). ``"unknown"`` means no session.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

import orjson

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
    parse_asn,
    require_time,
    stable_id,
)

SOURCE = "okta"
TENANT_KEY = "sessionwarden.tenant"
"""Set by `split` on events taken out of an event hook: the org host from ``source``."""

HOOK_EVENT_TYPE = "com.okta.event_hook"

# Event types with a fixed meaning; other user.session.* / user.authentication.*
# types are interactions of the session (see `event_type_of`).
FIXED_TYPES: dict[str, EventType] = {
    "user.session.start": EventType.LOGIN,
    "user.session.end": EventType.LOGOUT,
    # The user's browser presents the Okta session to open an app. Okta logs the
    # same event for an app launch and for an OIDC prompt=none renewal and the two
    # cannot be told apart, so it is the generic "session used" interaction.
    "user.authentication.sso": EventType.INTERACTION,
    "policy.evaluate_sign_on": EventType.INTERACTION,
}
SESSION_PREFIXES = ("user.session.", "user.authentication.")
# Session-namespace events whose actor is not the session's own device.
NOT_SESSION_ACTIVITY = (
    "user.session.impersonation.",  # Okta support / admin impersonation grants
    "user.session.clear",  # an admin clears another user's sessions
    "user.authentication.universal_logout",  # admin or system triggered
)
FAILED_RESULTS = frozenset({"FAILURE", "DENY"})
# Okta's own back-end requests logged against a user's session (Okta IPs, this UA).
OKTA_INTERNAL_AGENTS = frozenset({"Okta-Integrations"})

_EVENTBRIDGE_SOURCE = "aws.partner/okta.com"
_LOG_EVENT_KEYS = (
    "uuid",
    "published",
    "legacyEventType",
    "displayMessage",
    "actor",
    "authenticationContext",
)


def _is_log_event(record: dict[str, Any]) -> bool:
    kind = record.get("eventType")
    return isinstance(kind, str) and "." in kind and any(k in record for k in _LOG_EVENT_KEYS)


def _is_hook(record: dict[str, Any]) -> bool:
    return record.get("eventType") == HOOK_EVENT_TYPE and isinstance(
        as_dict(record.get("data")).get("events"), list
    )


def _unwrap(record: dict[str, Any]) -> dict[str, Any] | None:
    """The LogEvent inside any accepted envelope, or None when not Okta."""
    if _is_log_event(record) and not _is_hook(record):
        return record
    detail = record.get("detail")
    if isinstance(detail, dict) and (
        str(record.get("source", "")).startswith(_EVENTBRIDGE_SOURCE) or _is_log_event(detail)
    ):
        return detail
    return None


def looks_like(record: dict[str, Any]) -> bool:
    """An Okta LogEvent, alone, in an EventBridge envelope or in an event hook."""
    return _is_hook(record) or _unwrap(record) is not None


def split(record: dict[str, Any]) -> list[Any] | None:
    """The events of an event hook delivery, tagged with the org host; None otherwise."""
    if not _is_hook(record):
        return None
    tenant = ""
    source = record.get("source")
    if isinstance(source, str):
        try:
            tenant = urlsplit(source).hostname or ""
        except ValueError:
            tenant = ""
    events: list[Any] = record["data"]["events"]
    return [{**e, TENANT_KEY: tenant} if isinstance(e, dict) and tenant else e for e in events]


def event_type_of(kind: str) -> EventType | None:
    """The native type of an Okta eventType, None when it is not session activity."""
    fixed = FIXED_TYPES.get(kind)
    if fixed is not None:
        return fixed
    if kind.startswith(NOT_SESSION_ACTIVITY) or not kind.startswith(SESSION_PREFIXES):
        return None
    return EventType.INTERACTION


def ip_of(event: dict[str, Any]) -> str | None:
    """``client.ipAddress``, else the first hop of ``request.ipChain``.

    Okta writes a missing address as the string "null"; that falls back. A
    value that is present but not an IP is malformed (InvalidRecord).
    """
    client = as_dict(event.get("client"))
    ip = optional_ip(client.get("ipAddress"), "client.ipAddress")
    if ip is not None:
        return ip
    for chain, name in (
        (as_dict(event.get("request")).get("ipChain"), "request.ipChain[0].ip"),
        (client.get("ipChain"), "client.ipChain[0].ip"),
    ):
        if isinstance(chain, list) and chain:
            ip = optional_ip(as_dict(chain[0]).get("ip"), name)
            if ip is not None:
                return ip
    return None


def user_of(event: dict[str, Any]) -> str | None:
    """The acting user: ``actor.id``, else ``actor.alternateId`` (login name)."""
    actor = as_dict(event.get("actor"))
    if opt_str(actor.get("type")) not in (None, "User"):
        return None
    return opt_text(actor.get("id")) or opt_text(actor.get("alternateId"))


def client_id_of(event: dict[str, Any]) -> str | None:
    """``client.id`` (the OAuth client), else the app instance the event targets."""
    client_id = opt_text(as_dict(event.get("client")).get("id"))
    if client_id is not None:
        return client_id
    targets = event.get("target")
    if isinstance(targets, list):
        for target in targets:
            entry = as_dict(target)
            if entry.get("type") == "AppInstance" and opt_text(entry.get("id")) is not None:
                return opt_text(entry.get("id"))
    return None


def event_id_of(event: dict[str, Any], kind: str) -> str:
    """``uuid:eventType``, or a hash of the event when it has no uuid.

    Okta's uuid identifies one LogEvent; the eventType suffix keeps ids unique
    where a source reuses a uuid across event types (seen in real exports), so
    the engine's per-session dedupe drops only true re-deliveries.
    """
    uuid = opt_text(event.get("uuid"))
    if uuid is None:
        return stable_id(SOURCE, event)
    return f"{uuid}:{kind}"


def normalize(record: dict[str, Any]) -> Outcome:
    """One Okta record -> SessionEvent, Skip, or InvalidRecord raised."""
    if _is_hook(record):
        parts = split(record) or []
        if not parts:
            return Skip("okta:empty event hook delivery: 0 events", SOURCE)
        if len(parts) == 1 and isinstance(parts[0], dict):
            return _normalize_event(parts[0])
        raise InvalidRecord(f"event hook delivery with {len(parts)} events: decode_line splits it")
    return _normalize_event(record)


def _normalize_event(record: dict[str, Any]) -> Outcome:
    event = _unwrap(record)
    if event is None:
        raise InvalidRecord("not an Okta LogEvent: no dotted eventType with uuid/published")
    kind = event.get("eventType")
    if not isinstance(kind, str) or not kind:
        raise InvalidRecord("eventType missing or not a string")
    mapped = event_type_of(kind)
    label = kind[:80]
    if mapped is None:
        return Skip(f"okta:not session activity: {label}", SOURCE)
    result = opt_str(as_dict(event.get("outcome")).get("result"))
    if result is not None and result.upper() in FAILED_RESULTS:
        return Skip(f"okta:failed outcome: {label} {result[:16]}", SOURCE)
    client = as_dict(event.get("client"))
    agent = opt_str(as_dict(client.get("userAgent")).get("rawUserAgent"))
    if agent in OKTA_INTERNAL_AGENTS:
        return Skip(f"okta:okta-internal request: {label}", SOURCE)
    context = as_dict(event.get("authenticationContext"))
    session_id = opt_text(context.get("externalSessionId"))  # "unknown" = no session
    if session_id is None:
        return Skip(f"okta:no session id: {label}", SOURCE)
    ip = ip_of(event)
    if ip is None:
        return Skip(f"okta:no client IP: {label}", SOURCE)
    security = as_dict(event.get("securityContext"))
    debug = as_dict(as_dict(event.get("debugContext")).get("debugData"))
    geo = as_dict(client.get("geographicalContext"))
    point = as_dict(geo.get("geolocation"))
    level, reasons = risk_of(debug)
    proxy = security.get("isProxy")
    return SessionEvent(
        event_id=event_id_of(event, kind),
        type=mapped,
        occurred_at=require_time(event.get("published"), "published"),
        session=SessionInfo(id=session_id),
        ip=ip,
        tenant=opt_str(event.get(TENANT_KEY)) or "",
        user_id=user_of(event),
        client_id=client_id_of(event),
        connection=opt_text(context.get("authenticationProvider")),
        user_agent=agent,
        asn=parse_asn(security.get("asNumber")),
        source=SOURCE,
        device_token=(opt_text(debug.get("dtHash")) or "")[:128] or None,
        idp_proxy=proxy if isinstance(proxy, bool) else None,
        idp_risk=level,
        idp_risk_reasons=reasons,
        idp_country=(opt_text(geo.get("country")) or "")[:64] or None,
        idp_city=(opt_text(geo.get("city")) or "")[:128] or None,
        idp_latitude=_coordinate(point.get("lat"), 90),
        idp_longitude=_coordinate(point.get("lon"), 180),
    )


def _coordinate(value: object, bound: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if -bound <= value <= bound else None


_LEVEL = re.compile(r"level\W+(LOW|MEDIUM|HIGH)", re.IGNORECASE)
_REASONS = re.compile(r"reasons\W+([^=}\"]+?)(?:,\s*level|\"|}|$)", re.IGNORECASE)


def risk_of(debug: dict[str, Any]) -> tuple[str | None, tuple[str, ...]]:
    """Okta's risk verdict from debugData: `risk` ("{reasons=..., level=HIGH}" or an
    object), or the `logOnlySecurityData` JSON text that carries the same."""
    for raw in (debug.get("risk"), debug.get("logOnlySecurityData")):
        text = raw if isinstance(raw, str) else orjson.dumps(raw).decode() \
            if isinstance(raw, dict) else None
        if not text:
            continue
        level = _LEVEL.search(text)
        if level is None:
            continue
        found = _REASONS.search(text)
        reasons = tuple(r.strip()[:64] for r in found.group(1).split(",") if r.strip()) \
            if found else ()
        return level.group(1).lower(), reasons[:8]
    return None, ()


ADAPTER = Adapter(SOURCE, looks_like, normalize, split=split)
