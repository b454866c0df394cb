"""Smoke test of the benchmark harness pieces that need no broker.

Why: `make bench` runs for many minutes, so a broken harness would only show
up there; this runs replay vs orjson on ~2,000 generated events and checks
the shape of what the report is built from, in a few seconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from bench import report
from bench.orjson_roundtrip import roundtrip
from bench.replay_bench import bench_replay
from bench.replay_memory import deep_size
from bench.workload import generate, latency_event


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate(2_000, 200, seed=3, out_dir=tmp_path_factory.mktemp("bench"))


def test_replay_bench_measures_replay_and_orjson_side_by_side(events: Path,
                                                               tmp_path: Path) -> None:
    result = bench_replay(events, rounds=1, work=tmp_path)
    assert result["events"] == 2_000
    assert result["events_per_s"] > 0
    assert result["orjson_roundtrip_events_per_s"] > result["events_per_s"]
    assert 0 < result["ratio_to_orjson"] < 1
    assert len(result["rounds"]) == 1
    assert result["summary"]["commands"] > 0
    assert result["process_startup_s"] > 0


def test_orjson_roundtrip_skips_what_is_not_json(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"a": 1}\nnot json\n[1, 2]\n')
    dst = tmp_path / "out.jsonl"
    assert roundtrip(src, dst) == 3
    assert dst.read_bytes() == b'{"a":1}\n[1,2]\n'


def test_latency_events_each_name_their_cause() -> None:
    key, event_id, value = latency_event(5, sessions=3, run="r")
    doc = orjson.loads(value)
    assert key == b"lat-r-2" and doc["event_id"] == event_id == "lat-r-5"
    assert doc["type"] == "interaction"
    assert doc["organization"]["metadata"]["idle_session_timeout"]


def test_deep_size_counts_shared_objects_once() -> None:
    shared = "x" * 1000
    one = deep_size({"a": [shared]})
    two = deep_size({"a": [shared], "b": [shared]})
    assert 0 < two - one < 1000


def _results() -> dict[str, Any]:
    results: dict[str, Any] = {
        "date": "2026-11-27T00:00:00Z", "command": "make bench-quick", "mode": "quick",
        "duration_s": 1.0,
        "machine": {"cpu_model": "cpu", "cores": 2, "ram_gib": 1.0, "os": "linux",
                    "loadavg_at_start": [0.0, 0.0, 0.0]},
        "versions": dict.fromkeys(("python", "python_build", "orjson", "faust-streaming",
                                   "aiokafka", "rocksdict", "ua-parser", "kafka_broker",
                                   "java"), "1"),
        "replay": {"events_per_s": 60_000.0, "orjson_roundtrip_events_per_s": 100_000.0,
                   "ratio_to_orjson": 0.6, "events": 10, "input": "f", "rounds": [{}],
                   "process_startup_s": 1.0},
        "kafka": {"events_per_s": 1_000.0, "latency_ms_p99": 150.0, "cpu_us_per_event": 140.0,
                  "baseline": {"speedup": 2.2}},
        "memory": {"bytes_per_session": 900.0},
        "workload": {}, "method": ["m"], "errors": {},
    }
    results["targets"] = report.check_targets(results)
    return results


def test_targets_and_markdown_from_a_results_dict() -> None:
    results = _results()
    met = {row["key"]: row["met"] for row in results["targets"]}
    assert met["replay.ratio_to_orjson"] is True
    assert met["kafka.baseline.speedup"] is False  # a nested key: 2.2 < 3
    assert met["kafka.cpu_us_per_event"] is True
    assert met["kafka.latency_ms_p99"] is False
    assert met["memory.bytes_per_session"] is True
    assert met["scale.cpu_efficiency"] is None  # not run
    page = report.render(results)
    assert page.startswith("# Benchmarks")
    assert "| replay / orjson round trip (one process) | >= 0.25 | 0.6 | yes |" in page
    assert "not run" in page
    orjson.dumps(results)  # results.json must be serialisable


def test_before_after_and_stage_tables() -> None:
    """The worker's before/after (same rounds) and where the CPU goes, beyond the pipeline too."""
    results = _results()
    results["kafka"]["baseline"] = {"command": "old", "events_per_s": 400.0,
                                    "cpu_us_per_event": 480.0, "speedup": 2.5}
    results["kafka"]["passthrough_events_per_s"] = 4_000.0
    results["replay"]["stages"] = {"lines": 50, "cpu_us_per_event": {
        "decode": 20.0, "enrich": 10.0, "evaluate": 40.0, "serialize": 1.0,
        "bookkeeping": 29.0, "pipeline": 100.0}}
    page = report.render(results)
    assert "| events/s | 400 | 1,000 |" in page
    assert "| ratio to the aiokafka passthrough | 0.1 |" in page
    assert "| **whole pipeline** (`Pipeline.process`) | 137 | 100 |" in page
    assert "RocksDB reads/writes, baseline codec, delivery |  | 40 |" in page  # 140 - 100


def test_labelled_evaluation_compares_two_policies_on_one_corpus(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The before/after table of BENCHMARKS.md: the old policy revoked roaming users."""
    from bench.evaluation import main  # noqa: PLC0415

    results = tmp_path / "evaluation.json"
    before = Path(report.__file__).parent / "policies" / "before-issue-9.toml"
    assert main(["--benign", "3", "--hijack", "2", "--history-days", "2", "--out",
                 str(tmp_path / "eval"), "--compare", str(before),
                 "--results", str(results)]) == 0
    table = capsys.readouterr().out
    r = orjson.loads(results.read_bytes())
    assert r["before"]["corpus"] == {**r["after"]["corpus"], "policy": str(before)}
    rows = {line.split(" | ")[0].strip("| "): line for line in table.splitlines()}
    assert {"vpn_starts_on", "tor", "**benign_false_revoke_rate**"} <= set(rows)
    # any ASN change revoked a VPN user before; today it is their own network
    vpn = next(s for s in r["before"]["scenarios"] if s["scenario"] == "vpn_starts_on")
    assert vpn["false_revoke_rate"] > 0
    assert r["after"]["overall"]["benign_false_revoke_rate"] < \
        r["before"]["overall"]["benign_false_revoke_rate"]
    assert "\n".join(report.evaluation_section(results)).count("| tor | hijack |") == 1


def test_stage_profile_reports_every_stage(events: Path) -> None:
    from bench.profile_replay import profile  # noqa: PLC0415

    result = profile(events)
    stages = result["cpu_us_per_event"]
    assert set(stages) == {"decode", "enrich", "evaluate", "serialize", "bookkeeping",
                           "pipeline"}
    assert stages["pipeline"] > 0 and result["lines"] == 2_000


def test_set_affinity_pins_every_thread_of_a_process() -> None:
    """The taskset cross-check pins the broker's threads, not only its main thread."""
    import os  # noqa: PLC0415
    import threading  # noqa: PLC0415

    from bench.kafka_bench import set_affinity  # noqa: PLC0415

    before = os.sched_getaffinity(0)
    started, stop = threading.Event(), threading.Event()
    tids: list[int] = []

    def run() -> None:
        tids.append(threading.get_native_id())
        started.set()
        stop.wait(10)

    thread = threading.Thread(target=run)
    thread.start()
    started.wait(10)
    try:
        one = {min(before)}
        set_affinity(os.getpid(), one)
        assert os.sched_getaffinity(tids[0]) == one
        assert os.sched_getaffinity(0) == one
    finally:
        set_affinity(os.getpid(), before)
        stop.set()
        thread.join()
    assert os.sched_getaffinity(0) == before
