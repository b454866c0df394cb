"""Auth0 log events: the shared real samples, field mapping and envelope detection."""

from __future__ import annotations

import copy
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from detectors.model import EventType, SessionEvent
from detectors.timefmt import parse_time
from worker.formats import Invalid, Outcome, Skip, decode_line, decode_record
from worker.replay import iter_records

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "idp_samples"
LINES = (SAMPLES / "auth0.jsonl").read_bytes().splitlines()


def record(n: int) -> dict[str, Any]:
    """Line n (1-based) of auth0.jsonl, decoded."""
    value: dict[str, Any] = orjson.loads(LINES[n - 1])
    return value


def one(line: bytes, fmt: str = "auto") -> Outcome:
    outcomes = decode_line(line, fmt)
    assert len(outcomes) == 1
    return outcomes[0]


def event(outcome: Outcome) -> SessionEvent:
    assert isinstance(outcome, SessionEvent), outcome
    return outcome


def reason_class(outcome: Skip | Invalid) -> str:
    return outcome.reason.split(": ")[0]


def test_shared_samples_counts_and_skip_reasons() -> None:
    outcomes = [o for line in LINES for o in decode_line(line)]
    events = [o for o in outcomes if isinstance(o, SessionEvent)]
    skips = [o for o in outcomes if isinstance(o, Skip)]
    dead = [o for o in outcomes if isinstance(o, Invalid)]
    assert (len(events), len(skips), len(dead)) == (11, 62, 0)
    assert Counter(e.type for e in events) == {EventType.LOGIN: 10, EventType.LOGOUT: 1}
    assert Counter(reason_class(s) for s in skips) == {
        "auth0:not session activity": 53,
        "auth0:no session id": 9,
    }
    assert Counter(s.reason.rsplit(": ", 1)[1] for s in skips) == {
        "sapi": 35,
        "seacft": 9,
        "signup_pwd_leak": 4,
        "gd_enrollment_complete": 3,
        "f": 2,
        "ss": 2,
        "mgmt_api_read": 1,
        "fp": 1,
        "fn": 1,
        "fs": 1,
        "ferrt": 1,
        "gd_send_pn": 1,
        "limit_wc": 1,
    }
    assert {o.source for o in outcomes} == {"auth0"}


def test_success_login_maps_every_field() -> None:
    e = event(one(LINES[0]))
    assert e.type is EventType.LOGIN
    assert e.event_id == "90020211103032530111223343147286033102509916061341581378"
    assert e.session.id == "1TAd-7tsPYzxWudzqfHYXN0e6q1D0GSc"
    assert e.ip == "81.2.69.143"
    assert (
        e.user_agent
        == "Mozilla/5.0 (X11;Ubuntu; Linux x86_64; rv:93.0) Gecko/20100101 Firefox/93.0"
    )
    assert e.user_id == "auth0|6182002f34f4dd006b05b5c7"
    assert e.client_id == "aI61p8I8aFjmYRliLWgvM9ev97kCCNDB"
    assert e.connection == "Username-Password-Authentication"
    assert e.tenant == "dev-yoj8axza"  # from hostname dev-yoj8axza.au.auth0.com
    assert e.occurred_at == parse_time("2021-11-03T03:25:28.923Z")
    assert e.asn is None
    assert e.source == "auth0"


def test_logout_carries_the_login_session() -> None:
    login, logout = event(one(LINES[0])), event(one(LINES[13]))
    assert logout.type is EventType.LOGOUT
    assert logout.session.id == login.session.id
    assert logout.ip == "81.2.69.143"
    assert logout.occurred_at == parse_time("2021-11-03T05:53:57.546Z")


def test_code_exchange_without_session_is_skipped_not_dead() -> None:
    out = one(LINES[38])
    assert out == Skip("auth0:no session id: seacft", "auth0")


def test_failed_login_with_session_id_is_still_not_session_activity() -> None:
    assert record(12)["data"]["details"]["session_id"]  # an `f` that names a session
    assert one(LINES[11]) == Skip("auth0:not session activity: f", "auth0")


def _synthetic(kind: str, **data: Any) -> dict[str, Any]:
    base = copy.deepcopy(record(1))
    base["data"]["type"] = kind
    base["data"].update(data)
    return base


def test_refresh_token_exchange_uses_refresh_token_session_and_forwarded_ip() -> None:
    rec = _synthetic(
        "sertft",
        ip="89.160.20.112",
        client_ip="10.0.0.7",
        user_agent="Chrome 120.0.0 / Mac OS X 10.15.7",
        details={"refresh_token": {"access": "offline", "session_id": "rt-session-1"}},
        tenant_name="acme",
    )
    e = event(decode_record(rec))
    assert e.type is EventType.TOKEN_REFRESH
    assert e.session.id == "rt-session-1"
    assert e.ip == "89.160.20.112"  # `ip` follows X-Forwarded-For; client_ip does not
    assert e.user_agent == "Chrome 120.0.0 / Mac OS X 10.15.7"  # summary form, unchanged
    assert e.tenant == "acme"


def test_silent_auth_session_from_prompts_and_organization() -> None:
    rec = _synthetic(
        "ssa",
        details={"prompts": [{"name": "authenticate", "session_id": "p-sess"}]},
        organization_id="org_1",
        organization_name="Acme",
    )
    e = event(decode_record(rec))
    assert (e.type, e.session.id, e.organization) == (EventType.SILENT_AUTH, "p-sess", "org_1")


def test_client_credentials_is_never_session_activity() -> None:
    rec = _synthetic("seccft", details={"session_id": "x"})
    assert decode_record(rec) == Skip("auth0:not session activity: seccft", "auth0")


def test_panther_timestamp_and_custom_domain_tenant() -> None:
    rec = _synthetic("s", date="2025-10-01 05:39:16.467000000", hostname="auth.clientdomain.com")
    e = event(decode_record(rec))
    assert e.occurred_at == parse_time("2025-10-01T05:39:16.467Z")
    assert e.tenant == "auth.clientdomain.com"


def test_missing_ip_is_skip_garbage_ip_is_invalid() -> None:
    no_ip = _synthetic("slo")
    del no_ip["data"]["ip"]
    assert decode_record(no_ip) == Skip("auth0:no client IP: slo", "auth0")
    bad = decode_record(_synthetic("s", ip="12.12.12"))
    assert isinstance(bad, Invalid) and bad.source == "auth0" and "ip" in bad.reason


def test_session_event_without_date_is_invalid() -> None:
    rec = _synthetic("s")
    del rec["data"]["date"]
    out = decode_record(rec)
    assert out == Invalid("date missing", "auth0")
    assert isinstance(decode_record(_synthetic("s", date="yesterday")), Invalid)


def test_record_without_any_id_gets_a_stable_hash() -> None:
    rec = _synthetic("s")
    del rec["log_id"], rec["data"]["log_id"]
    first, again = event(decode_record(rec)), event(decode_record(copy.deepcopy(rec)))
    assert first.event_id == again.event_id and first.event_id.startswith("auth0-")
    rec["data"]["ip"] = "81.2.69.144"
    assert event(decode_record(rec)).event_id != first.event_id


def test_bare_event_and_management_api_id() -> None:
    bare = record(1)["data"]
    assert event(one(orjson.dumps(bare))).session.id == "1TAd-7tsPYzxWudzqfHYXN0e6q1D0GSc"
    api_export = {k: v for k, v in bare.items() if k != "log_id"} | {"_id": "api-id-1"}
    assert event(decode_record(api_export)).event_id == "api-id-1"


def test_eventbridge_envelope() -> None:
    inner = record(14)
    envelope = {
        "version": "0",
        "id": "0b7a1c5e-0000-0000-0000-000000000000",
        "detail-type": "Auth0 log",
        "source": "aws.partner/auth0.com/dev-yoj8axza-1f2e3d4c/auth0.logs",
        "account": "123456789012",
        "time": "2021-11-03T05:53:57Z",
        "region": "us-east-1",
        "resources": [],
        "detail": inner,
    }
    e = event(one(orjson.dumps(envelope)))
    assert (e.type, e.event_id) == (EventType.LOGOUT, inner["log_id"])


def test_json_array_line_and_filebeat_wrapper() -> None:
    line = orjson.dumps([record(1), record(15), {"json": record(14)}])
    outcomes = decode_line(line)
    assert [type(o).__name__ for o in outcomes] == ["SessionEvent", "Skip", "SessionEvent"]


def _file_outcomes(path: Path) -> list[str]:
    """What replay and produce see: records of a file, each through decode_line."""
    return [type(o).__name__ for _n, raw in iter_records(path) for o in decode_line(raw)]


def test_whole_file_json_array_and_json_lines_documents(tmp_path: Path) -> None:
    pretty = orjson.dumps([record(1), record(15)], option=orjson.OPT_INDENT_2)
    assert b"\n" in pretty
    (tmp_path / "export.json").write_bytes(pretty)
    assert _file_outcomes(tmp_path / "export.json") == ["SessionEvent", "Skip"]
    (tmp_path / "logs.jsonl").write_bytes(b"\n".join(LINES[:3]) + b"\n")
    assert _file_outcomes(tmp_path / "logs.jsonl") == ["SessionEvent"] * 3


def test_forced_format() -> None:
    assert event(one(LINES[0], "auth0")).source == "auth0"
    okta_like = orjson.dumps({"eventType": "user.session.start", "uuid": "u"})
    assert isinstance(one(okta_like, "auth0"), Invalid)
    assert isinstance(one(LINES[0], "okta"), Invalid)


@pytest.mark.parametrize("kind", ["s", "ssa", "slo", "sertft", "seacft", "sepft", "sens"])
def test_session_types_with_session_id_become_events(kind: str) -> None:
    rec = _synthetic(kind, details={"session_id": "sid-1"})
    assert event(decode_record(rec)).session.id == "sid-1"
