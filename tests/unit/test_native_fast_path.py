"""The typed native fast path (msgspec) gives exactly what the checked path gives.

`fast_native` either returns the very event `normalize_native` builds, or None
(then `normalize_native` runs, so dead-letter reasons cannot change). Checked on
the demo, every IdP sample (whole replays, fast path on vs off, byte for byte),
and on hostile variants of a valid record.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detectors import DEFAULT_POLICY
from worker.enrich import Enricher
from worker.formats import decode_line, native
from worker.formats.base import InvalidRecord
from worker.replay import OUTPUT_FILES, replay

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "data" / "demo" / "events.jsonl"
IDP = REPO / "tests" / "fixtures" / "idp_samples"
SAMPLES = [*sorted(IDP.glob("*.jsonl")), IDP / "keycloak.log"]

VALID: dict[str, Any] = {
    "event_id": "evt-1", "type": "login", "occurred_at": "2026-11-27T10:00:00.000Z",
    "tenant": "acme",
    "session": {"id": "s-1", "created_at": "2026-11-27T09:59:00Z",
                "authenticated_at": "2026-11-27T09:59:00.000Z",
                "expires_at": "2026-11-28T09:59:00.000Z",
                "idle_expires_at": "2026-11-27T10:15:00.000Z"},
    "user": {"id": "auth0|42", "groups": ["admins", "ops"]},
    "client_id": "app-1",
    "connection": {"name": "Username-Password", "metadata": {"session_timeout": "3600000"}},
    "organization": {"id": "org_1", "metadata": {"idle_session_timeout": "900000",
                                                 "other": [1, {"x": None}]}},
    "request": {"ip": "2001:0db8::0001", "user_agent": "Mozilla/5.0", "asn": "AS1221"},
}


def _slow(record: dict[str, Any]) -> object:
    try:
        return native.normalize_native(copy.deepcopy(record))
    except InvalidRecord as exc:
        return ("invalid", str(exc))


def _check(record: dict[str, Any]) -> None:
    """fast_native agrees with normalize_native, or declines."""
    fast = native.fast_native(copy.deepcopy(record))
    if fast is not None:
        assert fast == _slow(record)


def _decode_both(line: bytes, monkeypatch: pytest.MonkeyPatch) -> tuple[list[object], ...]:
    with_fast = decode_line(line)
    with monkeypatch.context() as m:
        m.setattr(native, "fast_native", lambda _record: None)
        without = decode_line(line)
    return with_fast, without


def test_common_record_takes_the_fast_path() -> None:
    event = native.fast_native(copy.deepcopy(VALID))
    assert event is not None
    assert event == _slow(VALID)
    assert event.ip == "2001:db8::1" and event.asn == 1221
    assert event.groups == ("admins", "ops")


MUTATIONS: list[tuple[str, object]] = [
    (path, value)
    for path in ("event_id", "type", "occurred_at", "tenant", "client_id", "user", "user.id",
                 "user.groups", "connection", "connection.name", "connection.metadata",
                 "organization", "organization.id", "organization.metadata", "session",
                 "session.id", "session.created_at", "session.authenticated_at",
                 "session.expires_at", "session.idle_expires_at", "request", "request.ip",
                 "request.user_agent", "request.asn")
    for value in ("", None, 0, 7, -1, 1.5, True, False, [], ["x", 1], {}, {"name": 3},
                  "x", "null", "AS0", "AS4294967296", 2**64, 1795773600000, 1795773600,
                  "2026-11-27T10:00:00Z", "2026-11-27T10:00:00.1Z", "2026-13-27T10:00:00Z",
                  "2026-11-27t10:00:00Z", "2026-11-27 10:00:00Z", "2026-11-27T10:00:00+00:00",
                  "\uff12\uff10\uff12\uff16-11-27T10:00:00Z", "1969-12-31T23:59:59.999Z",
                  "0000-01-01T00:00:00Z",
                  "10.0.0.1", " 10.0.0.1 ", "999.1.1.1", "x" * 300, "\x00")
] + [(path, "<delete>") for path in (
    "event_id", "type", "occurred_at", "tenant", "user", "user.id", "user.groups",
    "connection", "organization", "session", "session.id", "session.created_at",
    "request", "request.ip", "request.user_agent", "request.asn")]


def _mutated(path: str, value: object) -> dict[str, Any]:
    doc = copy.deepcopy(VALID)
    *parents, last = path.split(".")
    node: Any = doc
    for p in parents:
        node = node[p]
    if value == "<delete>":
        del node[last]
    else:
        node[last] = value
    return doc


@pytest.mark.parametrize(("path", "value"), MUTATIONS)
def test_hostile_field_values_agree(path: str, value: object,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    doc = _mutated(path, value)
    _check(doc)
    try:
        line = orjson.dumps(doc)
    except TypeError:
        return
    fast, slow = _decode_both(line, monkeypatch)
    assert fast == slow  # same events, same dead-letter reasons and sources


@pytest.mark.parametrize("line", [
    b'{"event_id":"e","type":"login","occurred_at":"2026-11-27T10:00:00Z","session":{"id":"s"},'
    b'"request":{"ip":"10.0.0.1"},"extra":123456789012345678901234567890}',
    b'{"event_id":"e","type":"login","occurred_at":"2026-11-27T10:00:00Z","session":{"id":"s"},'
    b'"request":{"ip":"10.0.0.1","asn":123456789012345678901234567890}}',
    b'{"event_id":"e","type":"login","occurred_at":"2026-11-27T10:00:00Z","session":{"id":"s"},'
    b'"request":{"ip":"10.0.0.1"},"x":1e400}',
    b'{"event_id":"e","event_id":"f","type":"login","occurred_at":"2026-11-27T10:00:00Z",'
    b'"session":{"id":"s"},"request":{"ip":"10.0.0.1"}}',
    b'{"event_id":"e","type":"login","occurred_at":"2026-11-27T10:00:00Z","session":{"id":"s"},'
    b'"request":{"ip":"10.0.0.1","user_agent":"\\ud800"}}',
    b'[{"event_id":"e","type":"login","occurred_at":"2026-11-27T10:00:00Z",'
    b'"session":{"id":"s"},"request":{"ip":"10.0.0.1"}}, 5]',
    b'{"event_id":"e","type":"login","occurred_at":"2026-11-27T10:00:00Z","session":{"id":"s"},'
    b'"request":{"ip":"10.0.0.1"},"user":{"id":"u","groups":["' + b"g" * 300 + b'"]}}',
])
def test_odd_json_agrees(line: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    fast, slow = _decode_both(line, monkeypatch)
    assert fast == slow


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=8),
                     lambda children: st.lists(children, max_size=3)
                     | st.dictionaries(st.text(max_size=4), children, max_size=3), max_leaves=6)


@settings(max_examples=300, deadline=None)
@given(path=st.sampled_from([p for p, _ in MUTATIONS]), value=_json)
def test_any_json_value_in_any_field_agrees(path: str, value: object) -> None:
    _check(_mutated(path, value))


def _replay_bytes(src: Path, out: Path, enricher: Enricher) -> dict[str, bytes]:
    replay([src], out, DEFAULT_POLICY, enricher)
    return {name: (out / name).read_bytes() for name in [*OUTPUT_FILES, "summary.json"]
            if name != "signals.jsonl"}


@pytest.mark.parametrize("src", [DEMO, *SAMPLES], ids=lambda p: p.name)
def test_replay_outputs_identical_with_and_without_fast_path(
        src: Path, tmp_path: Path, enricher: Enricher, monkeypatch: pytest.MonkeyPatch) -> None:
    fast = _replay_bytes(src, tmp_path / "fast", enricher)
    monkeypatch.setattr(native, "fast_native", lambda _record: None)
    slow = _replay_bytes(src, tmp_path / "slow", enricher)
    assert fast == slow
