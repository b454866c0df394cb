"""Okta System Log events: the shared real samples, field mapping and envelopes."""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path
from typing import Any

import orjson

from detectors.model import EventType, SessionEvent
from detectors.timefmt import parse_time
from worker.formats import Invalid, Outcome, Skip, decode_line, decode_record

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "idp_samples"
LINES = (SAMPLES / "okta.jsonl").read_bytes().splitlines()


def record(n: int) -> dict[str, Any]:
    """Line n (1-based) of okta.jsonl, decoded."""
    value: dict[str, Any] = orjson.loads(LINES[n - 1])
    return value


def one(line: bytes, fmt: str = "auto") -> Outcome:
    outcomes = decode_line(line, fmt)
    assert len(outcomes) == 1
    return outcomes[0]


def event(outcome: Outcome) -> SessionEvent:
    assert isinstance(outcome, SessionEvent), outcome
    return outcome


def test_shared_samples_counts_and_skip_reasons() -> None:
    outcomes = [o for line in LINES for o in decode_line(line)]
    events = [o for o in outcomes if isinstance(o, SessionEvent)]
    skips = [o for o in outcomes if isinstance(o, Skip)]
    dead = [o for o in outcomes if isinstance(o, Invalid)]
    assert (len(events), len(skips), len(dead)) == (5, 14, 0)
    assert Counter(e.type for e in events) == {
        EventType.LOGIN: 2,
        EventType.LOGOUT: 2,
        EventType.INTERACTION: 1,
    }
    assert Counter(s.reason.split(": ")[0] for s in skips) == {
        "okta:not session activity": 8,
        "okta:failed outcome": 4,
        "okta:no session id": 2,
    }
    assert {o.source for o in outcomes} == {"okta"}


def test_session_end_maps_every_field() -> None:
    e = event(one(LINES[0]))
    assert e.type is EventType.LOGOUT
    assert e.event_id == "faf7398a-4f77-11ea-97fb-5925e98228bd:user.session.end"
    assert e.session.id == "102nZHzd6OHSfGG51vsoc22gw"
    assert e.ip == "175.16.199.1"
    assert e.user_id == "00u1abvz4pYqdM8ms4x6"
    assert e.user_agent is not None and e.user_agent.startswith(
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:7"
    )
    assert e.occurred_at == parse_time("2020-02-14T22:18:51.843Z")
    assert e.tenant == ""
    assert e.source == "okta"


def test_string_null_ip_falls_back_to_ip_chain() -> None:
    assert record(2)["client"]["ipAddress"] == "null"
    e = event(one(LINES[1]))
    assert e.ip == "175.16.199.1"
    # Same uuid, type and time as line 1: a re-delivery, so the same event id.
    assert e.event_id == event(one(LINES[0])).event_id


def test_session_start_asn_user_agent_and_placeholder_session() -> None:
    e = event(one(LINES[2]))
    assert (e.type, e.session.id, e.ip, e.asn) == (EventType.LOGIN, "xxxxxx", "81.2.69.144", 14618)
    assert e.user_agent == "blah"
    assert e.occurred_at == parse_time("2022-05-11T09:25:18.716Z")


def test_authentication_verify_is_an_interaction_of_the_session() -> None:
    e = event(one(LINES[3]))
    assert (e.type, e.session.id, e.ip, e.asn) == (
        EventType.INTERACTION,
        "102nZHzd6OHSfGG51vsoc22gw",
        "67.43.156.14",
        7922,
    )


def test_reused_uuid_gives_distinct_ids_per_event_type() -> None:
    ids = [event(one(LINES[n])).event_id for n in (0, 2, 3)]
    assert len({i.split(":")[0] for i in ids}) == 1  # the sample reuses one uuid
    assert len(set(ids)) == 3


def test_identity_engine_login_keeps_its_pre_session_id() -> None:
    e = event(one(LINES[16]))
    assert e.session.id == "idxyNcxVX2ESsSL0u462548Qg"
    assert e.ip == "142.126.158.61"
    assert e.client_id == "0oaz9fj21WKqTeaqs1d6"  # the AppInstance target (Admin Console)
    assert e.user_id == "00uz9fj5aT69fHVro1d6"


def test_failed_and_non_session_events_are_skipped() -> None:
    assert one(LINES[9]) == Skip("okta:failed outcome: user.session.start FAILURE", "okta")
    assert one(LINES[18]) == Skip(
        "okta:not session activity: system.operation.rate_limit.violation", "okta"
    )
    assert one(LINES[4]) == Skip(
        "okta:not session activity: user.session.impersonation.grant", "okta"
    )
    assert one(LINES[13]) == Skip("okta:no session id: user.authentication.sso", "okta")


def _success(**changes: Any) -> dict[str, Any]:
    rec = copy.deepcopy(record(17))
    rec.update(changes)
    return rec


def test_okta_internal_request_is_skipped() -> None:
    rec = _success()
    rec["client"]["userAgent"]["rawUserAgent"] = "Okta-Integrations"
    assert decode_record(rec) == Skip("okta:okta-internal request: user.session.start", "okta")


def test_unknown_session_id_is_skipped() -> None:
    rec = _success()
    rec["authenticationContext"]["externalSessionId"] = "unknown"
    assert decode_record(rec) == Skip("okta:no session id: user.session.start", "okta")


def test_missing_ip_is_skip_garbage_ip_is_invalid() -> None:
    rec = _success()
    rec["client"]["ipAddress"] = "null"
    rec["client"]["ipChain"] = []
    assert decode_record(rec) == Skip("okta:no client IP: user.session.start", "okta")
    rec["client"]["ipAddress"] = "redacted"
    out = decode_record(rec)
    assert isinstance(out, Invalid) and "client.ipAddress" in out.reason


def test_panther_time_and_bad_time() -> None:
    e = event(decode_record(_success(published="2022-09-09 04:26:09.792")))
    assert e.occurred_at == parse_time("2022-09-09T04:26:09.792Z")
    assert decode_record(_success(published="redacted")) == Invalid(
        "published: unparseable time: 'redacted'", "okta"
    )


def test_sso_and_sign_on_policy_are_interactions() -> None:
    for kind in ("user.authentication.sso", "policy.evaluate_sign_on"):
        assert event(decode_record(_success(eventType=kind))).type is EventType.INTERACTION
    denied = _success(eventType="policy.evaluate_sign_on", outcome={"result": "DENY"})
    assert decode_record(denied) == Skip(
        "okta:failed outcome: policy.evaluate_sign_on DENY", "okta"
    )


def test_event_hook_delivery_is_split_and_tagged_with_the_org() -> None:
    hook = {
        "eventType": "com.okta.event_hook",
        "eventTypeVersion": "1.0",
        "cloudEventsVersion": "0.1",
        "source": "https://acme.okta.com/api/v1/eventHooks/whoql0HfiLGPWc8Jx0g3",
        "eventId": "b5a188b9-5ece-4636-b041-482ffda96311",
        "eventTime": "2023-03-26T21:05:34.000Z",
        "contentType": "application/json",
        "data": {"events": [record(17), record(18)]},
    }
    outcomes = decode_line(orjson.dumps(hook))
    assert len(outcomes) == 2
    login = event(outcomes[0])
    assert (login.tenant, login.type) == ("acme.okta.com", EventType.LOGIN)
    assert outcomes[1] == Skip("okta:not session activity: user.lifecycle.deactivate", "okta")


def test_eventbridge_envelope_and_json_array() -> None:
    envelope = {
        "version": "0",
        "detail-type": "SystemLog",
        "source": "aws.partner/okta.com/acme/okta-stream",
        "detail": record(3),
    }
    assert event(one(orjson.dumps(envelope))).type is EventType.LOGIN
    outcomes = decode_line(orjson.dumps([record(1), record(6)]))
    assert [type(o).__name__ for o in outcomes] == ["SessionEvent", "Skip"]


def test_forced_format() -> None:
    assert event(one(LINES[0], "okta")).source == "okta"
    assert isinstance(one(LINES[0], "keycloak"), Invalid)


def test_real_samples_carry_their_device_token_and_risk_verdict() -> None:
    """debugData.dtHash and debugData.risk of the real samples reach the event (issue 9)."""
    checked = Counter[str]()
    for line in LINES:
        raw: dict[str, Any] = orjson.loads(line)
        debug = raw.get("debugContext", {}).get("debugData", {})
        outcomes = decode_line(line)
        if len(outcomes) != 1 or not isinstance(outcomes[0], SessionEvent):
            continue
        ev = outcomes[0]
        if debug.get("dtHash"):
            assert ev.device_token == debug["dtHash"][:128]
            checked["dtHash"] += 1
        if isinstance(debug.get("risk"), str) and "level=" in debug["risk"]:
            level = debug["risk"].split("level=")[1].split(",")[0].rstrip("}").strip()
            assert ev.idp_risk is not None and ev.idp_risk.lower() == level.lower()
            checked["risk"] += 1
    assert checked["dtHash"] > 0 and checked["risk"] > 0, checked
