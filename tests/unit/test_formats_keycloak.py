"""Keycloak events: server-log lines (raw and Filebeat-wrapped) and JSON events."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest

from detectors.model import EventType, SessionEvent
from detectors.timefmt import parse_time
from worker.formats import Invalid, Outcome, Skip, decode_line, decode_record
from worker.formats.keycloak import parse_fields

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "idp_samples"
JSON_LINES = (SAMPLES / "keycloak.jsonl").read_bytes().splitlines()
RAW_LINES = (SAMPLES / "keycloak.log").read_bytes().splitlines()

LOGIN_SESSION = "bae6e56e-368f-4809-89f3-48cfb6279f5e"
USER = "ce637d23-b89c-4fca-9088-1aea1d053e19"
HEAD = "2021-10-22 22:11:31,257 DEBUG [org.keycloak.events] (default task-2) "


def one(line: bytes | str, fmt: str = "auto") -> Outcome:
    outcomes = decode_line(line.encode() if isinstance(line, str) else line, fmt)
    assert len(outcomes) == 1
    return outcomes[0]


def event(outcome: Outcome) -> SessionEvent:
    assert isinstance(outcome, SessionEvent), outcome
    return outcome


@pytest.mark.parametrize("lines", [JSON_LINES, RAW_LINES], ids=["jsonl", "log"])
def test_shared_samples_counts_and_skip_reasons(lines: list[bytes]) -> None:
    outcomes = [o for line in lines for o in decode_line(line)]
    events = [o for o in outcomes if isinstance(o, SessionEvent)]
    skips = [o for o in outcomes if isinstance(o, Skip)]
    dead = [o for o in outcomes if isinstance(o, Invalid)]
    assert (len(events), len(skips), len(dead)) == (3, 10, 0)
    assert [e.type for e in events] == [
        EventType.LOGIN,
        EventType.TOKEN_REFRESH,
        EventType.LOGOUT,
    ]
    assert Counter(s.reason.split(": ")[0] for s in skips) == {
        "keycloak:not an event": 4,
        "keycloak:error event": 3,
        "keycloak:admin event": 3,
    }
    assert {o.source for o in outcomes} == {"keycloak"}


def test_raw_and_wrapped_lines_give_identical_events() -> None:
    for wrapped, raw in zip(JSON_LINES, RAW_LINES, strict=True):
        assert decode_line(wrapped) == decode_line(raw)


def test_login_maps_every_field() -> None:
    e = event(one(RAW_LINES[7]))
    assert e.type is EventType.LOGIN
    assert e.session.id == LOGIN_SESSION  # code_id
    assert e.ip == "10.2.2.156"  # private: valid, enrichment flags it
    assert e.user_id == USER
    assert e.client_id == "security-admin-console"
    assert e.tenant == "test"
    assert e.occurred_at == parse_time("2021-10-22T22:11:31.257Z")
    assert e.user_agent is None and e.asn is None
    assert e.event_id.startswith("keycloak-")


def test_code_to_token_and_logout_stay_on_the_login_session() -> None:
    code, logout = event(one(RAW_LINES[8])), event(one(RAW_LINES[11]))
    assert (code.type, code.session.id) == (EventType.TOKEN_REFRESH, LOGIN_SESSION)
    # LOGOUT has no code_id: the root authentication session is the user session.
    assert (logout.type, logout.session.id) == (EventType.LOGOUT, LOGIN_SESSION)
    assert logout.client_id is None  # clientId=null
    assert logout.occurred_at == parse_time("2021-10-22T22:45:12.592Z")


def test_server_log_lines_and_errors_are_skipped() -> None:
    assert one(RAW_LINES[1]) == Skip("keycloak:not an event: org.jboss.as.server", "keycloak")
    assert one(RAW_LINES[4]) == Skip("keycloak:error event: LOGIN_ERROR", "keycloak")
    assert one(RAW_LINES[9]) == Skip("keycloak:admin event: CREATE", "keycloak")
    garbled = (
        "2021-10-22 21:01:42,912 INFO  [org.wildfly.extension.undertow] (ServerService Thread "
        "Pool -- 64) WFLYUT002021-10-22 21: Registered web context: '/auth' for server "
        "'default-server'       "
    )
    assert one(garbled) == Skip("keycloak:not an event: org.wildfly.extension.undertow", "keycloak")
    assert one("\tat org.keycloak.services.X.y(X.java:1)") == Skip(
        "keycloak:not an event: log continuation line", "keycloak"
    )


def test_quoted_format_of_newer_keycloak() -> None:
    line = (
        '2024-10-30 11:57:03,414 DEBUG [org.keycloak.events] (executor-thread-7) type="LOGIN", '
        'realmId="f16e7899", realmName="master", clientId="account-console", '
        'userId="15745079", sessionId="25e60089", ipAddress="2001:db8::1", '
        'auth_method="openid-connect", redirect_uri="https://x.example/?a=1, b=2", '
        'note="say \\"hi\\", then=go", code_id="25e60089"'
    )
    e = event(one(line))
    assert (e.session.id, e.ip, e.tenant, e.user_id) == (
        "25e60089",
        "2001:db8::1",
        "master",
        "15745079",
    )


def test_field_parser_handles_every_quoting() -> None:
    fields = parse_fields(
        "type=LOGIN, realmId=ABCD TEST, userId=null, redirect_uri='http://a b', "
        'scope="openid email", note="x \\"y\\""'
    )
    assert fields == {
        "type": "LOGIN",
        "realmId": "ABCD TEST",
        "userId": None,
        "redirect_uri": "http://a b",
        "scope": "openid email",
        "note": 'x "y"',
    }


def test_refresh_without_session_in_old_format_is_skipped() -> None:
    line = HEAD + "type=REFRESH_TOKEN, realmId=test, clientId=app, userId=u, ipAddress=10.0.0.1"
    assert one(line) == Skip("keycloak:no session id: REFRESH_TOKEN", "keycloak")


@pytest.mark.parametrize(
    "body",
    [
        "something that is not an event",
        'type="LOGIN, realmId="x',
        "type=LOGIN, realmId=test, ipAddress=not-an-ip, code_id=abc",
        "type=LOGIN realmId=test",
    ],
)
def test_malformed_event_lines_are_dead_lettered(body: str) -> None:
    out = one(HEAD + body)
    assert isinstance(out, Invalid) and out.source == "keycloak"


def test_event_line_without_a_date_is_invalid() -> None:
    line = "22:11:31,257 DEBUG [org.keycloak.events] (t) type=LOGIN, realmId=t, ipAddress=10.0.0.1"
    assert one(line + ", code_id=s") == Invalid(
        "event has no date (time-only log timestamp and no record time)", "keycloak"
    )


def test_json_event_representation() -> None:
    rec = {
        "id": "00435000-25cf-4fda-a8ef-a53d9ebab77f",
        "time": 1758791787360,
        "type": "REFRESH_TOKEN",
        "realmId": "1e78c15a",
        "realmName": "uds",
        "clientId": "test-client",
        "userId": "cdf56084",
        "sessionId": "c3be023a",
        "ipAddress": "127.0.0.1",
        "error": None,
        "details": {"grant_type": "refresh_token"},
    }
    e = event(one(orjson.dumps(rec)))
    assert (e.event_id, e.type, e.session.id, e.occurred_at, e.tenant) == (
        "00435000-25cf-4fda-a8ef-a53d9ebab77f",
        EventType.TOKEN_REFRESH,
        "c3be023a",
        1758791787360,
        "uds",
    )
    no_id = {k: v for k, v in rec.items() if k != "id"}
    assert event(decode_record(no_id)).event_id == event(decode_record(dict(no_id))).event_id
    admin = {
        "time": 1758790053392,
        "realmId": "uds",
        "authDetails": {"realmId": "master", "ipAddress": "127.0.0.1"},
        "resourceType": "CLIENT",
        "operationType": "UPDATE",
        "resourcePath": "clients/8e5e",
    }
    assert decode_record(admin) == Skip("keycloak:admin event: UPDATE", "keycloak")


def test_quarkus_json_log_records() -> None:
    event_record = {
        "timestamp": "2024-10-30T17:27:03.414798073+05:30",
        "loggerName": "org.keycloak.events",
        "level": "DEBUG",
        "message": 'type="CODE_TO_TOKEN", realmId="f16e", realmName="master", '
        'clientId="security-admin-console", userId="157", sessionId="25e6", '
        'ipAddress="10.10.10.10", code_id="25e6"',
    }
    e = event(one(orjson.dumps(event_record)))
    assert (e.type, e.session.id, e.occurred_at) == (
        EventType.TOKEN_REFRESH,
        "25e6",
        parse_time("2024-10-30T11:57:03.414Z"),
    )
    ecs = {"@timestamp": "2025-05-01T01:16:31Z", "log.logger": "io.quarkus", "message": "started"}
    assert one(orjson.dumps(ecs)) == Skip("keycloak:not an event: io.quarkus", "keycloak")


def test_forced_format_and_unknown_text() -> None:
    assert event(one(RAW_LINES[7], "keycloak")).session.id == LOGIN_SESSION
    assert event(one(JSON_LINES[7], "keycloak")).session.id == LOGIN_SESSION
    assert isinstance(one(JSON_LINES[7], "auth0"), Invalid)
    assert isinstance(one(b"hello world"), Invalid)
    assert isinstance(one(orjson.dumps({"message": "hello world"})), Invalid)
