"""Native SessionEvent decoding: valid records and every kind of malformed input."""

from __future__ import annotations

import orjson
import pytest

from detectors.model import EventType, SessionEvent
from detectors.timefmt import TimeFormatError, format_time, parse_time
from worker.formats import Invalid, Skip, decode_line

VALID = {
    "event_id": "evt-1", "type": "login", "occurred_at": "2026-11-27T10:00:00.000Z",
    "tenant": "acme",
    "session": {"id": "s-1", "created_at": "2026-11-27T09:59:00Z"},
    "user": {"id": "auth0|42", "groups": ["admins", 7]},
    "client_id": "app-1",
    "connection": {"name": "Username-Password", "metadata": {"session_timeout": "3600000"}},
    "organization": {"id": "org_1", "metadata": {"idle_session_timeout": "900000"}},
    "request": {"ip": "2001:0db8::0001", "user_agent": "Mozilla/5.0", "asn": "AS1221"},
}


def one(line: bytes) -> object:
    [outcome] = decode_line(line)
    return outcome


def test_valid_native_event_maps_every_field() -> None:
    ev = one(orjson.dumps(VALID))
    assert isinstance(ev, SessionEvent)
    assert ev.type is EventType.LOGIN
    assert ev.occurred_at == parse_time("2026-11-27T10:00:00Z")
    assert ev.session.created_at == parse_time("2026-11-27T09:59:00Z")
    assert ev.ip == "2001:db8::1"  # canonical form
    assert ev.asn == 1221
    assert ev.groups == ("admins",)
    assert ev.connection == "Username-Password"
    assert ev.connection_metadata == {"session_timeout": "3600000"}
    assert ev.organization == "org_1"
    assert ev.source == "native"


def test_only_required_fields() -> None:
    ev = one(b'{"event_id":"e","type":"logout","occurred_at":1795773600000,'
             b'"session":{"id":"s"},"request":{"ip":"10.1.2.3"}}')
    assert isinstance(ev, SessionEvent)
    assert ev.user_id is None and ev.user_agent is None and ev.asn is None


def _without(path: str) -> bytes:
    doc = orjson.loads(orjson.dumps(VALID))
    *parents, last = path.split(".")
    node = doc
    for p in parents:
        node = node[p]
    del node[last]
    return orjson.dumps(doc)


def _with(path: str, value: object) -> bytes:
    doc = orjson.loads(orjson.dumps(VALID))
    *parents, last = path.split(".")
    node = doc
    for p in parents:
        node = node[p]
    node[last] = value
    return orjson.dumps(doc)


@pytest.mark.parametrize(("line", "reason"), [
    (b"this is not json", "not JSON"),
    (b'{"event_id": "e1", "type": "login"', "not JSON"),
    (b"", "empty record"),
    (b"   \n", "empty record"),
    (b"42", "JSON scalar"),
    (b'"a string"', "JSON scalar"),
    (b"\xff\xfe garbage", "not UTF-8"),
    (b'{"hello": "world"}', "unrecognised record"),
    (_without("event_id"), "unrecognised record"),
    (_without("occurred_at"), "occurred_at missing"),
    (_without("session.id"), "session.id missing"),
    (_without("request.ip"), "request.ip missing"),
    (_without("request"), "request missing"),
    (_with("type", "teleport"), "type must be one of"),
    (_with("occurred_at", "yesterday"), "unparseable time"),
    (_with("occurred_at", "2026-13-45T10:00:00Z"), "invalid time"),
    (_with("session.created_at", "soon"), "session.created_at"),
    (_with("request.ip", "999.1.1.1"), "not an IP address"),
    (_with("request.ip", "null"), "not an IP address"),
    (_with("request.ip", 17), "request.ip missing or not a string"),
    (_with("session", "s-1"), "session missing or not an object"),
])
def test_malformed_input_is_invalid_with_a_reason(line: bytes, reason: str) -> None:
    outcome = one(line)
    assert isinstance(outcome, Invalid), outcome
    assert reason in outcome.reason


def test_json_array_line_yields_each_record() -> None:
    line = orjson.dumps([VALID, {"nope": 1}, VALID])
    outcomes = decode_line(line)
    assert [type(o).__name__ for o in outcomes] == ["SessionEvent", "Invalid", "SessionEvent"]
    assert isinstance(decode_line(b"[]")[0], Skip)


@pytest.mark.parametrize(("text", "iso"), [
    ("2026-11-27T10:00:00Z", "2026-11-27T10:00:00.000Z"),
    ("2026-11-27T10:00:00.123456789Z", "2026-11-27T10:00:00.123Z"),
    ("2026-11-27 10:00:00.5", "2026-11-27T10:00:00.500Z"),
    ("2026-11-27T12:00:00+02:00", "2026-11-27T10:00:00.000Z"),
    ("2026-11-27T05:30:00-0430", "2026-11-27T10:00:00.000Z"),
    (1795773600, "2026-11-27T10:00:00.000Z"),
    (1795773600000, "2026-11-27T10:00:00.000Z"),
])
def test_time_formats(text: object, iso: str) -> None:
    assert format_time(parse_time(text)) == iso


@pytest.mark.parametrize("bad", ["", "10:00", "2026-11-27", True, None, -1, float("nan"), [], {}])
def test_bad_times(bad: object) -> None:
    with pytest.raises(TimeFormatError):
        parse_time(bad)
