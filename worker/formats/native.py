"""The native SessionEvent JSON format (DESIGN.md) -> SessionEvent."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec

from detectors.model import EVENT_TYPE_BY_NAME, EVENT_TYPES, SessionEvent, SessionInfo
from detectors.timefmt import TimeFormatError, parse_time
from worker.formats.base import (
    InvalidRecord,
    as_dict,
    canonical_ip,
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


# --- Typed fast path -------------------------------------------------------------------
#
# The common native record (string fields of the right JSON types, timestamps in the
# canonical `YYYY-MM-DDTHH:MM:SS[.fff]Z` shape, a valid IP) is type-checked by msgspec in
# C and built without the per-field checks above. Anything else (a wrong type, an
# unusual timestamp, a bad IP, an empty id...) returns None and the caller runs
# `normalize_native`, so every dead-letter reason and every odd-but-valid record is
# handled by exactly the code that handled it before. The JSON itself is still parsed
# by orjson (same acceptance of odd JSON as before: big integers, 1e400, nesting).


class _Session(msgspec.Struct):
    id: str
    created_at: str | None = None
    authenticated_at: str | None = None
    expires_at: str | None = None
    idle_expires_at: str | None = None


class _Request(msgspec.Struct):
    ip: str
    user_agent: str | None = None
    asn: int | str | None = None


class _User(msgspec.Struct):
    id: str | None = None
    groups: list[str] | None = None


class _Connection(msgspec.Struct):
    name: str | None = None
    metadata: dict[str, Any] | None = None


class _Organization(msgspec.Struct):
    id: str | None = None
    metadata: dict[str, Any] | None = None


class _NativeRecord(msgspec.Struct):
    event_id: str
    type: str
    occurred_at: str
    session: _Session
    request: _Request
    tenant: str | None = None
    user: _User | None = None
    client_id: str | None = None
    connection: _Connection | str | None = None
    organization: _Organization | str | None = None


class _Unusual(Exception):
    """A value the fast path leaves to `normalize_native`."""


_convert = msgspec.convert
_CANONICAL_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{3})?Z", re.ASCII).fullmatch
_FROMISO = datetime.fromisoformat
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
_SESSION_TIMES: dict[str, int] = {}
"""Session times by text: a session's created/authenticated/expiry times repeat on
every one of its events. Bounded: cleared when full (hits come back within a session)."""
_SESSION_TIMES_MAX = 1 << 13


def _canonical_ms(text: str) -> int:
    """Epoch ms of a canonical timestamp (C `fromisoformat`); _Unusual otherwise.

    Same value as `parse_time` on these shapes (its own fast path does the same).
    """
    if _CANONICAL_TIME(text) is None:
        raise _Unusual
    try:
        return (_FROMISO(text) - _EPOCH) // _ONE_MS
    except ValueError:  # e.g. month 13: parse_time names the problem
        raise _Unusual from None


def _session_ms(text: str | None) -> int | None:
    if not text:  # None or "": absent, as in `_opt_time`
        return None
    ms = _SESSION_TIMES.get(text)
    if ms is None:
        ms = _canonical_ms(text)
        if len(_SESSION_TIMES) >= _SESSION_TIMES_MAX:
            _SESSION_TIMES.clear()
        _SESSION_TIMES[text] = ms
    return ms


def fast_native(record: dict[str, Any]) -> SessionEvent | None:
    """`normalize_native`'s event for a common record, or None: then call `normalize_native`.

    Never raises: a record it cannot vouch for gets None, whatever is wrong with it.
    """
    try:
        r = _convert(record, _NativeRecord)
    except msgspec.ValidationError:
        return None
    event_type = EVENT_TYPE_BY_NAME.get(r.type)
    s, req = r.session, r.request
    if not r.event_id or event_type is None or not s.id or not req.ip:
        return None
    ip = canonical_ip(req.ip)
    if ip is None:
        return None
    try:
        occurred_at = _canonical_ms(r.occurred_at)
        session = SessionInfo(s.id, _session_ms(s.created_at), _session_ms(s.authenticated_at),
                              _session_ms(s.expires_at), _session_ms(s.idle_expires_at))
    except _Unusual:
        return None
    user, conn, org = r.user, r.connection, r.organization
    if user is not None:
        user_id = user.id or None
        groups = tuple(user.groups) if user.groups else ()
    else:
        user_id, groups = None, ()
    connection: str | None
    organization: str | None
    if isinstance(conn, _Connection):
        connection, connection_metadata = conn.name or None, conn.metadata or {}
    else:
        connection, connection_metadata = conn or None, {}
    if isinstance(org, _Organization):
        organization, organization_metadata = org.id or None, org.metadata or {}
    else:
        organization, organization_metadata = org or None, {}
    asn = req.asn
    return SessionEvent(
        event_id=r.event_id,
        type=event_type,
        occurred_at=occurred_at,
        session=session,
        ip=ip,
        tenant=r.tenant or "",
        user_id=user_id,
        groups=groups,
        client_id=r.client_id or None,
        connection=connection,
        connection_metadata=connection_metadata,
        organization=organization,
        organization_metadata=organization_metadata,
        user_agent=req.user_agent or None,
        asn=None if asn is None else parse_asn(asn),
        source="native",
    )
