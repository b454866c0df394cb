"""`sessionwarden replay`: outputs, determinism, streaming, exit codes."""

from __future__ import annotations

import subprocess
import sys
import tracemalloc
from pathlib import Path

import orjson
import pytest

from detectors import DEFAULT_POLICY
from worker.cli import main
from worker.enrich import Enricher
from worker.replay import OUTPUT_FILES, iter_records, replay

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "data" / "demo" / "events.jsonl"
UA = "Chrome 120.0.0 / Mac OS X 10.15.7"


def native(n: int, session: str, ip: str, kind: str = "login", **extra: object) -> bytes:
    doc = {"event_id": f"e{n}", "type": kind, "occurred_at": 1795773600000 + n * 1000,
           "tenant": "acme", "session": {"id": session}, "user": {"id": "u1"},
           "request": {"ip": ip, "user_agent": UA}, **extra}
    return orjson.dumps(doc)


def write(path: Path, lines: list[bytes]) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_replay_writes_its_files_and_a_consistent_summary(tmp_path: Path) -> None:
    src = write(tmp_path / "in.jsonl", [
        native(1, "s1", "89.160.20.112"),
        native(2, "s1", "216.160.83.56", "silent_auth"),
        b"{broken",
        native(3, "s2", "10.0.0.1"),
    ])
    out = tmp_path / "out"
    assert main(["replay", str(src), "--out", str(out)]) == 0
    assert sorted(p.name for p in out.iterdir()) == sorted(
        [*OUTPUT_FILES, "summary.json", "jwks.json", "run.json"])
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert summary["events_read"] == 4
    assert summary["events_processed"] == 3
    assert summary["dead_letters"] == 1
    assert summary["commands"] == 1
    assert summary["events_read"] == (summary["events_processed"] + summary["events_skipped"]
                                      + summary["dead_letters"])
    [dead] = [orjson.loads(x) for x in (out / "dead_letter.jsonl").read_bytes().splitlines()]
    assert dead["origin"] == {"file": str(src), "line": 3}
    assert dead["raw"] == "{broken\n"
    assert "not JSON" in dead["error"]
    [cmd] = [orjson.loads(x) for x in (out / "commands.jsonl").read_bytes().splitlines()]
    assert cmd["type"] == "revoke_session" and cmd["session_id"] == "s1"


def test_demo_replay_is_byte_identical_across_runs(tmp_path: Path, enricher: Enricher) -> None:
    replay([DEMO], tmp_path / "a", DEFAULT_POLICY, enricher)
    replay([DEMO], tmp_path / "b", DEFAULT_POLICY, enricher)
    for name in [*OUTPUT_FILES, "summary.json"]:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    summary = orjson.loads((tmp_path / "a" / "summary.json").read_bytes())
    assert summary["dead_letters"] > 0 and summary["commands"] > 0
    assert summary["commands_by_type"].keys() >= {
        "revoke_session", "set_expires_at", "set_idle_expires_at"}


def test_whole_file_json_array_is_accepted(tmp_path: Path) -> None:
    items = [orjson.loads(native(1, "s1", "89.160.20.112")), {"x": 1}]
    path = tmp_path / "export.json"
    path.write_bytes(orjson.dumps(items, option=orjson.OPT_INDENT_2))
    records = list(iter_records(path))
    assert [n for n, _ in records] == [1, 2]
    assert orjson.loads(records[0][1]) == items[0]


def test_replay_streams_its_input(tmp_path: Path, enricher: Enricher) -> None:
    """A large file is never held in memory: peak allocation stays far below its size."""
    path = tmp_path / "big.jsonl"
    with path.open("wb") as fh:
        for n in range(20_000):
            fh.write(native(n, f"s{n % 50}", "89.160.20.112", "interaction") + b"\n")
    size = path.stat().st_size
    tracemalloc.start()
    try:
        replay([path], tmp_path / "out", DEFAULT_POLICY, enricher)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert size > 4_000_000
    assert peak < size / 2


def test_exit_codes(tmp_path: Path) -> None:
    ok = write(tmp_path / "in.jsonl", [native(1, "s1", "89.160.20.112")])
    assert main(["replay", str(tmp_path / "missing.jsonl"), "--out", str(tmp_path / "o")]) == 2
    bad_policy = tmp_path / "p.toml"
    bad_policy.write_text("[detectors.ip_binding]\naction = 'explode'\n")
    assert main(["replay", str(ok), "--out", str(tmp_path / "o"),
                 "--policy", str(bad_policy)]) == 2
    assert main(["replay", str(ok), "--out", str(tmp_path / "o"),
                 "--city-db", str(tmp_path / "none.mmdb")]) == 2
    assert main(["replay", str(ok), "--out", str(tmp_path / "o")]) == 0


def test_console_script_runs(tmp_path: Path) -> None:
    src = write(tmp_path / "in.jsonl", [native(1, "s1", "89.160.20.112")])
    proc = subprocess.run([sys.executable, "-m", "worker", "replay", str(src), "--out",
                           str(tmp_path / "o")], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    assert orjson.loads(proc.stdout)["events_processed"] == 1


@pytest.mark.parametrize("fmt", ["native", "auto"])
def test_forced_format(tmp_path: Path, fmt: str) -> None:
    src = write(tmp_path / "in.jsonl", [native(1, "s1", "89.160.20.112")])
    assert main(["replay", str(src), "--out", str(tmp_path / fmt), "--format", fmt]) == 0
    summary = orjson.loads((tmp_path / fmt / "summary.json").read_bytes())
    assert summary["events_processed"] == 1
