"""`replay --jobs N` writes byte-identical outputs to `--jobs 1` (worker/parallel.py)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from detectors import DEFAULT_POLICY
from worker.cli import main
from worker.enrich import Enricher
from worker.formats import native_candidate
from worker.inputs import check_inputs
from worker.parallel import (
    _UNDECIDED,
    Plan,
    _fast_ids,
    merge_stats,
    native_ids,
    plan,
    state_keys,
)
from worker.pipeline import Stats
from worker.replay import OUTPUT_FILES, replay
from worker.settings import Settings
from worker.signals.tokens import Signer

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "data" / "demo" / "events.jsonl"
IDP = REPO / "tests" / "fixtures" / "idp_samples"
SAMPLES = [*sorted(IDP.glob("*.jsonl")), IDP / "keycloak.log"]
UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/131.0.0.0"


def ev(n: int, session: str, ip: str = "89.160.20.112", user: str | None = "u1",
       kind: str = "interaction", tenant: str | None = "acme", **extra: object) -> bytes:
    doc: dict[str, object] = {
        "event_id": f"e{n}", "type": kind, "occurred_at": 1795773600000 + n * 1000,
        "session": {"id": session}, "request": {"ip": ip, "user_agent": UA},
        "organization": {"id": "o", "metadata": {"idle_session_timeout": "900000"}}, **extra}
    if tenant is not None:
        doc["tenant"] = tenant
    if user is not None:
        doc["user"] = {"id": user}
    return orjson.dumps(doc)


def tricky(path: Path) -> Path:
    """Sessions whose user appears late, users shared across sessions, odd lines."""
    lines = [
        ev(1, "a", user=None, kind="login"),        # session a, no user yet
        ev(2, "b", user="u2", kind="login"),
        ev(3, "a", user="u2"),                      # a joins u2 (and so b) only now
        ev(4, "c", user="u3", kind="login", ip="216.160.83.56"),
        b"{broken",
        ev(5, "a", user=None, ip="216.160.83.56"),  # a, user from its baseline
        ev(6, "d", user="u2", tenant=None, kind="login"),  # tenant from nowhere
        b"[" + ev(7, "e", user="u4", kind="login") + b"," + ev(8, "c", user="u3") + b"]",
        ev(9, "c", user="u3", ip="81.2.69.161") + b"\x0c",  # stripped, not JSON whitespace
        b"   " + ev(10, "e", user="u4", ip="81.2.69.161"),
        ev(11, "f", user=None, kind="login"),
        ev(11, "f", user=None, kind="login"),       # duplicate
        b'{"hello": "world"}',
        ev(12, "a", user="u2", ip="89.160.20.112"),
        ev(13, "g", user="7", kind="login", tenant="t2"),
        ev(14, "b", user="u2", ip="81.2.69.161"),
        b"",
        ev(15, "d", user=None, ip="216.160.83.56"),
    ]
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


@pytest.fixture(scope="module")
def signer() -> Signer:
    made = Signer.from_settings(Settings(), ephemeral_ok=True)
    assert made is not None
    return made


def _outputs(src: Path, out: Path, enricher: Enricher, signer: Signer,
             jobs: int) -> dict[str, bytes]:
    replay([src], out, DEFAULT_POLICY, enricher, signer=signer, jobs=jobs)
    return {name: (out / name).read_bytes() for name in [*OUTPUT_FILES, "summary.json"]}


@pytest.mark.parametrize("src", [DEMO, *SAMPLES, "tricky"],
                         ids=lambda p: p if isinstance(p, str) else p.name)
def test_sharded_replay_is_byte_identical(src: Path | str, tmp_path: Path, enricher: Enricher,
                                          signer: Signer) -> None:
    path = tricky(tmp_path / "tricky.jsonl") if src == "tricky" else Path(src)
    one = _outputs(path, tmp_path / "one", enricher, signer, 1)
    for jobs in (2, 3):
        assert _outputs(path, tmp_path / f"j{jobs}", enricher, signer, jobs) == one
    summary = orjson.loads(one["summary.json"])
    assert summary["events_read"] > 0


def test_tricky_input_exercises_what_it_should(tmp_path: Path, enricher: Enricher,
                                               signer: Signer) -> None:
    one = _outputs(tricky(tmp_path / "t.jsonl"), tmp_path / "one", enricher, signer, 1)
    summary = orjson.loads(one["summary.json"])
    assert summary["dead_letters"] >= 3 and summary["duplicates"] == 1
    assert summary["commands"] > 0 and summary["sessions"] == 7


def test_plan_keeps_linked_sessions_and_users_together(tmp_path: Path) -> None:
    src = tricky(tmp_path / "t.jsonl")
    p = plan(check_inputs([src]), "auto", 2)
    shard = p.shard
    # Records 1, 2, 3, 6, 7 (a, b, d via u2) are one group; so are 4, 8, 9 (c via u3).
    assert len({shard[i] for i in (0, 1, 2, 5, 6, 13, 15, 17)}) == 1
    assert len({shard[i] for i in (3, 7, 8)}) == 1
    assert p.records == 18


def test_plan_balances_independent_groups() -> None:
    p = Plan(2)
    for i in range(100):
        p.add([f"s:{i}"])
    p.add([])
    p.finish()
    assert p.load == [50, 50]


def test_state_keys_of_other_formats() -> None:
    line = (IDP / "auth0.jsonl").read_bytes().splitlines()[0]
    keys = state_keys(line, "auto")
    assert all(k.startswith(("s:", "u:")) for k in keys)
    assert state_keys(b"{broken", "auto") == []


def test_merge_stats_sums_counters() -> None:
    a, b = Stats(events_read=2), Stats(events_read=3)
    a.dead_by_reason["x"] += 1
    b.dead_by_reason["x"] += 2
    b.commands_by_tenant["revoke_session", "t"] += 1
    total = merge_stats([a, b])
    assert total.events_read == 5 and total.dead_by_reason["x"] == 3
    assert total.commands_by_tenant["revoke_session", "t"] == 1


def test_cli_jobs_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(DEMO), "--out", str(tmp_path / "o"), "--jobs", "2",
                 "--json"]) == 0
    assert orjson.loads(capsys.readouterr().out)["events_read"] == 3000
    with pytest.raises(SystemExit):
        main(["replay", str(DEMO), "--out", str(tmp_path / "p"), "--jobs", "0"])


ODD_RECORDS = [
    b'{"event_id":"e1","occurred_at":"2026-01-01T00:00:00Z","session":{"id":"s1"},'
    b'"session":{"id":"s2"},"user":{"id":"u1"}}',  # duplicate keys: the last one wins
    b'{"event_id":"e2","session":{"id":"s3","id":"s4"}}',
    b'{"event_id":"e3","session":{"id":""}}',
    b'{"event_id":"e4","session":{"id":7},"user":{"id":"u"}}',
    b'{"event_id":"e5","session":null}',
    b'{"event_id":"e6","occurred_at":1,"user":"u"}',
    b'{"event_id":"e7","session":{"id":"s5"},"user":{"id":null}}',
    b'{"event_id":"e8","session":{"id":"s6"},"user":{"id":12}}',
    b'{"event_id":"e9","session":{"id":"s7"},"big":123456789012345678901234567890}',
    b'{"event_id":"e10","session":{"id":"s8"},"x":1e400}',
    b'{"eventType":"com.okta.event_hook","event_id":"e11","data":{"events":[]}}',
    b'{"event_id":"e12","data":{"events":[{"a":1}]},"session":{"id":"s9"}}',
    b'{"occurred_at":"2026-01-01T00:00:00Z","session":{"id":"s10"}}',
    b'[{"event_id":"e13","session":{"id":"s11"}}]',
    b'{"event_id":"e14","session":{"id":"s\\u00e9"}}',
    b'{"event_id":"e15","session":{"id":"s12"}',
]


def _records() -> list[bytes]:
    lines = [line for path in [DEMO, *sorted(IDP.iterdir())] if path.is_file()
             for line in path.read_bytes().splitlines() if line.strip()]
    return [*lines, *ODD_RECORDS]


def test_the_plans_msgspec_read_gives_the_ids_the_full_read_gives() -> None:
    """Where `_fast_ids` decides, it says what orjson + `native_candidate` + `native_ids` say."""
    decided = 0
    for raw in _records():
        fast = _fast_ids(raw)
        if fast == _UNDECIDED:
            continue
        decided += 1
        try:
            value = orjson.loads(raw)
        except orjson.JSONDecodeError:  # a dead letter for the pipeline: no state
            continue
        assert native_candidate(value), raw
        assert fast == native_ids(value), raw
    assert decided > 100  # the demo's records are decided the fast way
    assert _fast_ids(ODD_RECORDS[0]) == ("s2", "u1")
    assert _fast_ids(ODD_RECORDS[10]) == _UNDECIDED  # an Okta hook envelope
    assert _fast_ids(ODD_RECORDS[13]) == _UNDECIDED  # an array
