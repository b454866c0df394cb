"""Keycloak events -> SessionEvent.

Accepted inputs:
- the JSON event representation of the Event SPI / admin REST API
  (``{"id"?, "time", "type", "realmId", "clientId", "userId", "sessionId",
  "ipAddress", "error"?, "details": {...}}``); admin events (``operationType``)
  are skipped;
- server-log text lines written by the ``jboss-logging`` event listener under
  the ``org.keycloak.events`` category, WildFly (``type=LOGIN, realmId=test``)
  and Quarkus (Keycloak >= 24 quotes values: ``type="LOGIN", realmId="..."``)
  formats, raw or wrapped as ``{"message": "<line>"}`` (Filebeat);
- Quarkus JSON/ECS log records (``{"loggerName"|"log.logger", "message",
  "timestamp"|"@timestamp"}``) whose message is such an event.

Other server-log lines are Skip. Keycloak logs no user agent. Log timestamps
carry no zone: they are read as UTC (run Keycloak with TZ=UTC).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from detectors.model import EventType, SessionEvent, SessionInfo

# The dispatcher defines Adapter before it imports the vendor modules.
from worker.formats import Adapter
from worker.formats.base import (
    InvalidRecord,
    Outcome,
    Skip,
    absent,
    as_dict,
    opt_str,
    opt_text,
    optional_ip,
    require_time,
    stable_id,
)

SOURCE = "keycloak"
EVENT_CATEGORY = "org.keycloak.events"

SESSION_TYPES: dict[str, EventType] = {
    "LOGIN": EventType.LOGIN,
    "LOGOUT": EventType.LOGOUT,
    # Token endpoint grants on an existing user session. The caller may be the
    # client's back end, so these are token_refresh, not browser interactions.
    "CODE_TO_TOKEN": EventType.TOKEN_REFRESH,
    "REFRESH_TOKEN": EventType.TOKEN_REFRESH,
    "TOKEN_EXCHANGE": EventType.TOKEN_REFRESH,
    "OAUTH2_DEVICE_CODE_TO_TOKEN": EventType.TOKEN_REFRESH,
    "AUTHREQID_TO_TOKEN": EventType.TOKEN_REFRESH,
    # Account actions the signed-in user performs in the browser (account console,
    # required actions): the session's device, worth comparing with its baseline.
    "UPDATE_PASSWORD": EventType.INTERACTION,
    "UPDATE_CREDENTIAL": EventType.INTERACTION,
    "REMOVE_CREDENTIAL": EventType.INTERACTION,
    "UPDATE_TOTP": EventType.INTERACTION,
    "REMOVE_TOTP": EventType.INTERACTION,
    "UPDATE_PROFILE": EventType.INTERACTION,
    "UPDATE_EMAIL": EventType.INTERACTION,
    "VERIFY_EMAIL": EventType.INTERACTION,
    "VERIFY_PROFILE": EventType.INTERACTION,
    "GRANT_CONSENT": EventType.INTERACTION,
    "UPDATE_CONSENT": EventType.INTERACTION,
    "REVOKE_GRANT": EventType.INTERACTION,
}
# Not session activity: CLIENT_LOGIN (service accounts), INTROSPECT_TOKEN and
# USER_INFO_REQUEST (resource servers / back ends), REGISTER, IDENTITY_PROVIDER_*
# (steps before LOGIN), and every *_ERROR.

# Where the user session id is: `sessionId` (JSON events, Keycloak >= 24 log
# lines), `code_id` (LOGIN / CODE_TO_TOKEN detail: the user session id), and the
# root authentication session, whose id Keycloak reuses for the user session.
SESSION_ID_FIELDS = ("sessionId", "code_id", "authSessionParentId")

_HEADER = re.compile(
    r"(?P<stamp>(?:\d{4}-\d{2}-\d{2}[ T])?\d{2}:\d{2}:\d{2}(?:[.,]\d{1,9})?"
    r"(?:Z|[+-]\d{2}:?\d{2})?)"
    r"\s+(?P<level>[A-Z]{4,7})\s+\[(?P<category>[^\]\s]+)\]\s*"
    r"(?:\([^()]*(?:\([^()]*\)[^()]*)*\)\s*)?"
    r"(?P<body>.*)",
    re.DOTALL,
)
_TYPE = re.compile(r"[A-Z][A-Z0-9_]*")
_HAS_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*=")
_NEXT_KEY = re.compile(r", (?=[A-Za-z_][A-Za-z0-9_.\-]*=)")
_CLOSING = {q: re.compile(re.escape(q) + r"(?=, [A-Za-z_][A-Za-z0-9_.\-]*=|\s*$)") for q in "\"'"}
_EVENT_BODY = re.compile(r"(?:type|operationType)=[\"']?[A-Z_]+[\"']?, realmId=")
_CONTINUATION = re.compile(r"(?:at [\w$.<>/]+\(|Caused by: |\.\.\. \d+ more|Suppressed: )")
_LOGGER_KEYS = ("loggerName", "log.logger", "logger_name", "logger")
_TIME_KEYS = ("timestamp", "@timestamp")


def parse_fields(body: str) -> dict[str, str | None]:
    """``k=v, k2='v 2', k3="v3"`` -> dict; the literal null becomes None.

    Values are unquoted (up to the next ``, key=``), single-quoted (old detail
    values with spaces) or double-quoted with backslash escapes (Keycloak >= 24).
    Raises InvalidRecord when the text is not such a list.
    """
    fields: dict[str, str | None] = {}
    pos, end = 0, len(body)
    while pos < end:
        match = _KEY.match(body, pos)
        if match is None:
            raise InvalidRecord(f"malformed event field at {body[pos : pos + 40]!r}")
        key = match.group()[:-1]
        pos = match.end()
        quote = body[pos] if pos < end and body[pos] in "\"'" else ""
        if quote:
            found = _CLOSING[quote].search(body, pos + 1)
            if found is None:
                raise InvalidRecord(f"unterminated quoted value for {key!r}")
            raw = body[pos + 1 : found.start()]
            value: str = raw.replace("\\" + quote, quote).replace("\\\\", "\\")
            pos = found.end()
        else:
            found = _NEXT_KEY.search(body, pos)
            stop = found.start() if found else end
            value = body[pos:stop].rstrip()
            pos = stop
        fields[key] = None if value == "null" else value
        if pos < end:
            if body.startswith(", ", pos):
                pos += 2
            elif body[pos:].strip():
                raise InvalidRecord(f"malformed event field after {key!r}")
            else:
                pos = end
    return fields


def _event_from_fields(
    fields: dict[str, Any], when: Callable[[], int | None], event_id: str
) -> Outcome:
    """The common mapping for JSON events and parsed log lines.

    ``when`` reads the event time only once the event is known to be usable, so
    a skipped record is never dead-lettered for its timestamp.
    """
    operation = fields.get("operationType")
    if operation is not None:
        return Skip(f"keycloak:admin event: {str(operation)[:32]}", SOURCE)
    kind = fields.get("type")
    if not isinstance(kind, str) or _TYPE.fullmatch(kind) is None:
        raise InvalidRecord(f"type missing or not an event type name: {str(kind)[:40]!r}")
    if kind.endswith("_ERROR") or not absent(fields.get("error")):
        return Skip(f"keycloak:error event: {kind[:64]}", SOURCE)
    mapped = SESSION_TYPES.get(kind)
    if mapped is None:
        return Skip(f"keycloak:not session activity: {kind[:64]}", SOURCE)
    details = as_dict(fields.get("details"))
    session_id = next(
        (
            sid
            for name in SESSION_ID_FIELDS
            if (sid := opt_text(fields.get(name)) or opt_text(details.get(name))) is not None
        ),
        None,
    )
    if session_id is None:
        return Skip(f"keycloak:no session id: {kind}", SOURCE)
    ip = optional_ip(fields.get("ipAddress"), "ipAddress")
    if ip is None:
        return Skip(f"keycloak:no client IP: {kind}", SOURCE)
    occurred_at = when()
    if occurred_at is None:
        raise InvalidRecord("event has no date (time-only log timestamp and no record time)")
    return SessionEvent(
        event_id=event_id,
        type=mapped,
        occurred_at=occurred_at,
        session=SessionInfo(id=session_id),
        ip=ip,
        tenant=opt_text(fields.get("realmName")) or opt_text(fields.get("realmId")) or "",
        user_id=opt_text(fields.get("userId")),
        client_id=opt_text(fields.get("clientId")),
        connection=opt_text(fields.get("identity_provider") or details.get("identity_provider")),
        user_agent=None,
        source=SOURCE,
    )


def _from_message(
    message: str, record_time: object, event_id: str, logger: str | None = None
) -> Outcome:
    """A log line or event message, optionally with its JSON log record's time/logger."""
    text = message.strip()
    header = _HEADER.match(text)
    category = header.group("category") if header else logger
    body = header.group("body") if header else text
    is_event = category == EVENT_CATEGORY or _EVENT_BODY.match(body) is not None
    if not is_event:
        if header is not None or logger is not None:
            return Skip(f"keycloak:not an event: {(category or '')[:64]}", SOURCE)
        if _CONTINUATION.match(text):
            return Skip("keycloak:not an event: log continuation line", SOURCE)
        raise InvalidRecord(f"not JSON, nor a Keycloak log line: {text[:60]!r}")
    if not body.startswith(("type=", "operationType=")):
        raise InvalidRecord(f"event line without type/operationType: {body[:60]!r}")
    stamp = header.group("stamp") if header else ""

    def when() -> int | None:
        if _HAS_DATE.match(stamp):
            return require_time(stamp, "log timestamp")
        return None if absent(record_time) else require_time(record_time, "timestamp")

    return _event_from_fields(parse_fields(body), when, event_id)


def normalize_text(line: str) -> Outcome:
    """One raw server-log line."""
    return _from_message(line, None, stable_id(SOURCE, line.strip()))


def _logger_of(record: dict[str, Any]) -> str | None:
    for key in _LOGGER_KEYS:
        value = record.get(key)
        if isinstance(value, str):
            return value
    log = record.get("log")
    return opt_str(as_dict(log).get("logger")) if isinstance(log, dict) else None


def _record_time(record: dict[str, Any]) -> object:
    return next((record[k] for k in _TIME_KEYS if k in record), None)


def _is_json_event(record: dict[str, Any]) -> bool:
    """An EventRepresentation (user event) or AdminEventRepresentation."""
    if "operationType" in record:
        return "resourceType" in record or "authDetails" in record
    return isinstance(record.get("type"), str) and (
        "time" in record or ("realmId" in record and ("ipAddress" in record or "userId" in record))
    )


def looks_like(record: dict[str, Any]) -> bool:
    """A Keycloak JSON event, admin event, or a log record whose message is Keycloak's."""
    if _is_json_event(record):
        return True
    message = record.get("message")
    if not isinstance(message, str):
        return False
    if _logger_of(record) is not None:
        return True
    text = message.strip()
    return _HEADER.match(text) is not None or _EVENT_BODY.match(text) is not None


def normalize(record: dict[str, Any]) -> Outcome:
    """One Keycloak JSON record -> SessionEvent, Skip, or InvalidRecord raised."""
    message = record.get("message")
    if isinstance(message, str) and not _is_json_event(record):
        logger = _logger_of(record)
        if logger is not None:  # a JSON log record: its time and id come from the record
            return _from_message(message, _record_time(record), stable_id(SOURCE, record), logger)
        # Filebeat's {"message": line}: the same id as the raw line
        return _from_message(message, _record_time(record), stable_id(SOURCE, message.strip()))
    if not _is_json_event(record):
        raise InvalidRecord("not a Keycloak event: no type+time, operationType or message")
    if "operationType" in record:
        return Skip(f"keycloak:admin event: {str(record.get('operationType'))[:32]}", SOURCE)
    event_id = opt_text(record.get("id")) or stable_id(SOURCE, record)
    stamp = record["time"] if "time" in record else _record_time(record)
    return _event_from_fields(record, lambda: require_time(stamp, "time"), event_id)


ADAPTER = Adapter(SOURCE, looks_like, normalize, normalize_text=normalize_text)
