"""The native SessionEvent JSON format (DESIGN.md) -> SessionEvent."""

from __future__ import annotations

from typing import Any

from detectors.model import EVENT_TYPE_BY_NAME, EVENT_TYPES, SessionEvent, SessionInfo
from detectors.timefmt import TimeFormatError, parse_time
from worker.formats.base import (
    InvalidRecord,
    as_dict,
    opt_str,
    parse_asn,
    require_ip,
)


def looks_native(record: dict[str, Any]) -> bool:
    """Native records name their event with `event_id` and `occurred_at`."""
    return "event_id" in record and ("occurred_at" in record or "session" in record)


def _opt_time(value: object, name: str) -> int | None:
    if value is None or value == "":
        return None
    try:
        return parse_time(value)
    except TimeFormatError as exc:
        raise InvalidRecord(f"{name}: {exc}") from None


def normalize_native(record: dict[str, Any]) -> SessionEvent:
    """Validate a native record; raises InvalidRecord naming the first problem."""
    event_id = record.get("event_id")
    if not isinstance(event_id, str) or not event_id:
        raise InvalidRecord("event_id missing or not a string")
    kind = record.get("type")
    event_type = EVENT_TYPE_BY_NAME.get(kind) if isinstance(kind, str) else None
    if event_type is None:
        raise InvalidRecord(f"type must be one of {sorted(EVENT_TYPES)}, got {kind!r}"[:200])
    if "occurred_at" not in record:
        raise InvalidRecord("occurred_at missing")
    occurred_at = _opt_time(record["occurred_at"], "occurred_at")
    if occurred_at is None:
        raise InvalidRecord("occurred_at missing")
    session = record.get("session")
    if not isinstance(session, dict):
        raise InvalidRecord("session missing or not an object")
    session_id = session.get("id")
    if not isinstance(session_id, str) or not session_id:
        raise InvalidRecord("session.id missing or not a string")
    request = record.get("request")
    if not isinstance(request, dict):
        raise InvalidRecord("request missing or not an object")
    ip = require_ip(request.get("ip"), "request.ip")
    user = as_dict(record.get("user"))
    groups = user.get("groups")
    connection = record.get("connection")
    organization = record.get("organization")
    conn = as_dict(connection)
    org = as_dict(organization)
    return SessionEvent(
        event_id=event_id,
        type=event_type,
        occurred_at=occurred_at,
        session=SessionInfo(
            id=session_id,
            created_at=_opt_time(session.get("created_at"), "session.created_at"),
            authenticated_at=_opt_time(session.get("authenticated_at"), "session.authenticated_at"),
            expires_at=_opt_time(session.get("expires_at"), "session.expires_at"),
            idle_expires_at=_opt_time(session.get("idle_expires_at"), "session.idle_expires_at"),
        ),
        ip=ip,
        tenant=opt_str(record.get("tenant")) or "",
        user_id=opt_str(user.get("id")),
        groups=tuple(g for g in groups if isinstance(g, str)) if isinstance(groups, list) else (),
        client_id=opt_str(record.get("client_id")),
        connection=opt_str(conn.get("name")) if conn else opt_str(connection),
        connection_metadata=as_dict(conn.get("metadata")),
        organization=opt_str(org.get("id")) if org else opt_str(organization),
        organization_metadata=as_dict(org.get("metadata")),
        user_agent=opt_str(request.get("user_agent")),
        asn=parse_asn(request.get("asn")),
        source="native",
    )
