"""`python -m bench.run [--quick]`: every benchmark, then results.json and BENCHMARKS.md.

Full mode writes bench/results.json and BENCHMARKS.md (repo root); quick mode
(small inputs, fewer rounds, for development) writes both under bench/out/
so a quick run never overwrites the published figures. Sizes are chosen so a
full run stays under 20 minutes on a 2-core machine (see `Plan`).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

import orjson

from bench import report
from bench.common import (
    OUT,
    PY,
    REPO,
    load_kafka_local,
    log,
    machine_info,
    versions,
    write_atomically,
)
from bench.replay_bench import bench_replay, run_replay
from bench.workload import generate

SECTIONS = ("replay", "kafka", "scale", "memory")


@dataclass(frozen=True, slots=True)
class Plan:
    """Input sizes and repetitions of one mode."""

    replay_events: int
    replay_sessions: int
    replay_rounds: int
    jobs_rounds: int
    """`replay --jobs 1` vs `--jobs 2` pairs (on the full file when there is one)."""
    full_events: int | None
    """The full-size file replayed once (None: skipped)."""
    full_sessions: int
    warm_events: int
    warm_sessions: int
    kafka_events: int
    kafka_sessions: int
    kafka_rounds: int
    scale_rounds: int
    latency_rate: int
    latency_low_rate: int
    """A second, lighter offered load: latency when the worker is not saturated."""
    latency_seconds: float
    latency_warmup_s: float
    memory_events: int
    memory_sessions: int
    memory_warm_events: int
    memory_replay_events: int
    memory_replay_sessions: int
    """The replay memory run (state size per session): the targets are stated at 50,000."""
    """Warm-up before the memory baseline: enough events to fill the bounded caches."""


FULL = Plan(replay_events=200_000, replay_sessions=20_000, replay_rounds=3, jobs_rounds=1,
            full_events=1_000_000, full_sessions=100_000, warm_events=20_000,
            warm_sessions=2_000, kafka_events=60_000, kafka_sessions=6_000, kafka_rounds=3,
            scale_rounds=3, latency_rate=5_000, latency_low_rate=500,
            latency_seconds=8.0, latency_warmup_s=2.0,
            memory_events=500_000, memory_sessions=50_000, memory_warm_events=80_000,
            memory_replay_events=500_000, memory_replay_sessions=50_000)
QUICK = Plan(replay_events=20_000, replay_sessions=2_000, replay_rounds=3, jobs_rounds=2,
             full_events=None, full_sessions=0, warm_events=2_000, warm_sessions=200,
             kafka_events=10_000, kafka_sessions=1_000, kafka_rounds=2, scale_rounds=1,
             latency_rate=5_000, latency_low_rate=500,
             latency_seconds=3.0, latency_warmup_s=1.0,
             memory_events=10_000, memory_sessions=1_000, memory_warm_events=5_000,
             memory_replay_events=10_000, memory_replay_sessions=1_000)

METHOD = [
    "Every figure is the median of the listed rounds after a warm-up run; each comparison "
    "is interleaved (A,B then B,A) in the same run and its ratio is the median of the "
    "per-round ratios, so it holds when the machine's load changes during the run.",
    "replay: wall time of the whole `sessionwarden replay FILE --out DIR` process (spawn "
    "to exit, interpreter start included) vs a process that only decodes each line with "
    "orjson and encodes it again to a file (`bench/orjson_roundtrip.py`); events = input "
    "lines.",
    "kafka: the input topic is pre-filled once with `sessionwarden produce` (keyed by "
    "session); every run reads it from the start with a fresh group, app id and output "
    "topics. The clock starts when the process can consume (worker: first `ready` from "
    "/health, polled every 20 ms; passthrough: its partition-assignment callback) and "
    "stops when the output topics hold every expected record (commands + audit + alerts + "
    "dead letters, as `sessionwarden replay` counts them for the same file; end offsets "
    "polled every 100 ms). The worker publishes a batch's outputs before it stores state "
    "and acks, so then every input record is processed. Time to committed lag zero is "
    "recorded per run (`lag_zero_after_s`); it adds the worker's commit interval (2.8 s).",
    "passthrough: `bench/passthrough.py`, plain aiokafka: getmany (<= 1000 records), "
    "`producer.send` per record (acks=all, idempotent, 256 KiB batches), await delivery, "
    "commit; one output record per input record. The worker writes ~0.9 output records "
    "plus changelog records per input record.",
    "latency: a worker on an empty topic; the bench produces the first events of the "
    "throughput file (the same mix the capacity was measured on; most events cause no "
    "command) at a paced rate, half the worker's events/s measured in the same run "
    "(`offered_share_of_capacity`), with an idempotent acks=all producer that batches "
    "for up to 5 ms (as a log shipper would; counted in the latency); latency = each "
    "command consumed from the commands topic minus the moment its cause event was "
    "handed to the producer, matched by cause_event_id, in the bench process (which also "
    "produces and consumes on the same 2 cores; `cpu_us_per_event` shows what the worker, "
    "the broker and the bench each used). `commands_expected` is what `sessionwarden "
    "replay` of the same lines gives. `at_rate_every_event_a_command` repeats the run "
    "with synthetic events that each cause one `set_idle_expires_at` command (policy "
    "min_idle_extension_ms = 0): every event a decision with a command and an audit "
    "record, a heavier load than the capacity's.",
    "CPU: every Kafka run reads user + system CPU (all threads) of each measured process "
    "from /proc/<pid>/stat at the start and end of its timed window and reports it per "
    "input event (`cpu_us_per_event`); the broker's separately "
    "(`broker_cpu_us_per_event`). /proc/stat gives the machine's busy time; what the "
    "measured processes (worker(s) or passthrough, broker, the bench itself) did not use is "
    "`other_cpu_share` (of 2 cores): other processes, interrupts and the hypervisor's steal "
    "time (this machine is a VM; /proc/stat counts steal as busy). Rounds where any run's "
    "other share exceeds 10 % are dropped from the medians (`rounds_dropped`; all rounds "
    "are kept if none is left).",
    "scale: the same pre-filled topic (4 partitions) consumed by 1 worker and by 2 worker "
    "processes in one group; the clock starts when the first worker is ready, so the "
    "second worker's join and the rebalance are part of the 2-worker time. "
    "`cpu_efficiency` = one worker's CPU per event / two workers' CPU per event summed, "
    "from separate runs in which the workers are ready (joined, recovered, settled) before "
    "the file is produced into an empty topic, so only per-event work counts (standby "
    "replicas included). 0.9 means 11 % more CPU per event with two workers. Cross-check "
    "(`scale.pinned`, one pair after the rounds): the same runs with the broker's threads, "
    "the bench and the producer pinned to core 0 (`sched_setaffinity`, `taskset -c 0`) and "
    "the workers started under `taskset -c 1`, so the workers compete with each other only.",
    "baseline (optional, `--baseline-cmd` or $SESSIONWARDEN_BENCH_BASELINE): another "
    "`sessionwarden` executable, e.g. the previous code's venv, run as a third contender "
    "in the same interleaved Kafka rounds (`kafka.baseline`).",
    "memory (worker): a worker on an empty topic first drains a warm-up file (other "
    "sessions), then RSS (/proc) and the RocksDB directory size are sampled before and "
    "after it drains N sessions' full event streams (N = 50,000, the targets' scale: the "
    "500,000-event file the replay memory run reads); growth / N. Includes the bounded "
    "caches, RocksDB's memtables (8 MiB x 2 per partition DB) and its block cache (64 MiB "
    "per partition DB, which at this size holds every data block read).",
    "memory (replay): the same Pipeline into a plain dict in its own process (after the "
    "same warm-up); process RSS growth / N and the deep size of the dict (every object "
    "reachable from the baselines, shared strings counted once).",
    "Workers run with product defaults except SESSIONWARDEN_LOG_LEVEL=WARNING, names, "
    "ports and data dirs; nothing is tuned for the benchmark.",
    "Sizes: replay rounds use a 200,000-event file and the 1,000,000-event / 100,000-session "
    "file is replayed once (one pair); the Kafka and scale runs use a 60,000-event file "
    "(not the 1M file) so that three interleaved rounds of each fit the ~20-minute budget "
    "at the worker's ~4,000 events/s on this machine; the worker memory run drains the "
    "500,000-event / 50,000-session file once.",
    "The code measured is the work tree at the date above; other engineers were changing "
    "and testing it on the same machine at the time (see the load averages).",
]


def _expected_outputs(src: Path) -> tuple[int, dict[str, Any]]:
    """Output records the worker must produce for src: what replay produces for it."""
    run = run_replay(src, OUT / "replay-expected")
    s = run.summary
    return int(s["commands"] + s["audit_events"] + s["alerts"] + s["dead_letters"]), s


def _section(results: dict[str, Any], name: str, fn: Callable[[], Any]) -> None:
    """Run one section; a failure is recorded and the other sections still run."""
    started = time.monotonic()
    try:
        fn()
    except Exception as exc:
        results["errors"][name] = f"{type(exc).__name__}: {exc}"
        log(f"{name} failed: {exc}\n{traceback.format_exc()}")
    results["section_seconds"][name] = round(time.monotonic() - started, 1)


def run(plan: Plan, mode: str, sections: tuple[str, ...],
        baseline_cmd: list[str] | None = None) -> dict[str, Any]:
    """Everything in `sections` for one plan; returns the results dict."""
    started = time.monotonic()
    OUT.mkdir(parents=True, exist_ok=True)
    results: dict[str, Any] = {
        "schema": 1, "mode": mode,
        "date": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "make bench" if mode == "full" else "make bench-quick",
        "machine": machine_info(), "plan": asdict(plan), "workload": {}, "errors": {},
        "section_seconds": {}, "method": METHOD,
    }
    files: dict[str, Path] = {}

    def prepare() -> None:
        files["replay"] = generate(plan.replay_events, plan.replay_sessions)
        files["warm"] = generate(plan.warm_events, plan.warm_sessions, seed=2)
        if plan.full_events and "replay" in sections:
            files["full"] = generate(plan.full_events, plan.full_sessions)
        if {"kafka", "scale"} & set(sections):
            files["kafka"] = generate(plan.kafka_events, plan.kafka_sessions)
        if "memory" in sections:
            files["memory"] = generate(plan.memory_events, plan.memory_sessions)
            files["memory_replay"] = generate(plan.memory_replay_events,
                                              plan.memory_replay_sessions)
            files["memory_warm"] = generate(plan.memory_warm_events,
                                            plan.memory_warm_events // 10, seed=4)
        for name, path in files.items():
            results["workload"][name] = (f"{path.name} ({path.stat().st_size / 2**20:.0f} MiB;"
                                         " data/generate_events.py --profile bench)")

    _section(results, "generate", prepare)
    if "replay" in sections and "replay" in files:
        _section(results, "replay", lambda: results.__setitem__("replay", bench_replay(
            files["replay"], plan.replay_rounds, warmup_src=files["warm"],
            full_src=files.get("full"), jobs_rounds=plan.jobs_rounds)))
    if "replay" in sections and "replay" in files:
        _section(results, "stages", lambda: results.setdefault("replay", {}).__setitem__(
            "stages", _stages(files["replay"], 50_000 if plan.full_events else 5_000)))
    if "memory" in sections and "memory" in files:
        _section(results, "memory_replay", lambda: results.setdefault("memory", {})
                 .__setitem__("replay", _replay_memory(files["memory_warm"],
                                                       files["memory_replay"])))
    kafka_version = None
    if {"kafka", "scale", "memory"} & set(sections) and "warm" in files:
        kafka_version = _kafka_sections(plan, sections, files, results, baseline_cmd)
    results["versions"] = versions(kafka_version)
    memory = results.get("memory") or {}
    if "replay" in memory:
        # The same codec writes the worker's table and changelog records.
        memory["stored_bytes_per_baseline"] = memory["replay"]["baseline_stored_bytes_avg"]
        memory["changelog_shrink_vs_json"] = memory["replay"]["baseline_shrink_vs_json"]
        memory["bytes_per_session"] = memory["replay"]["rss_bytes_per_session"]
        memory["bytes_per_session_source"] = "replay"
    if "worker" in memory:
        memory["bytes_per_session"] = memory["worker"]["bytes_per_session"]
        memory["bytes_per_session_source"] = "worker"
        memory["store_bytes_per_session"] = memory["worker"]["store_bytes_per_session"]
    results["targets"] = report.check_targets(results)
    results["duration_s"] = round(time.monotonic() - started, 1)
    results["machine"]["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    return results


def _stages(src: Path, lines: int) -> dict[str, Any]:
    """Per-stage CPU of the pipeline (`bench.profile_replay`) on the first lines of src."""
    part = OUT / f"stages-{lines}-{src.name}"
    if not part.exists():  # whole or absent: an interrupted run leaves no short slice behind
        with src.open("rb") as fh:
            write_atomically(part, b"".join(islice(fh, lines)).rstrip(b"\n"))
    # One round: caches start cold, as in the "before" figures (a second round would
    # find the enricher's caches warm and show enrich at a fraction of its cost).
    proc = subprocess.run([PY, "-m", "bench.profile_replay", str(part), "--rounds", "1"],
                          capture_output=True, check=True, cwd=REPO)
    out: dict[str, Any] = orjson.loads(proc.stdout)
    return out


def _replay_memory(warm: Path, src: Path) -> dict[str, Any]:
    proc = subprocess.run([PY, "-m", "bench.replay_memory", str(warm), str(src)],
                          capture_output=True, check=True, cwd=REPO)
    out: dict[str, Any] = orjson.loads(proc.stdout)
    out["input"] = src.name
    return out


def _kafka_sections(plan: Plan, sections: tuple[str, ...], files: dict[str, Path],
                    results: dict[str, Any], baseline_cmd: list[str] | None = None,
                    ) -> str | None:
    """Start one local broker, run the Kafka sections on it, stop it."""
    from bench import kafka_bench as kb  # noqa: PLC0415 - aiokafka only when needed

    kafka_local = load_kafka_local()
    broker = kafka_local.LocalKafka(OUT / "kafka", die_with_parent=True)
    log(f"starting Apache Kafka {broker.version}")
    try:
        broker.start(timeout=120)
    except Exception as exc:
        results["errors"]["broker"] = f"{type(exc).__name__}: {exc}"
        return None

    async def main() -> None:
        kafka = kb.Kafka(broker.bootstrap, OUT, broker_pid=broker._pid)
        await kafka.start()
        try:
            if {"kafka", "scale"} & set(sections):
                expected, _summary = _expected_outputs(files["kafka"])
                topic: dict[str, str] = {}

                async def throughput() -> None:
                    k = await kb.bench_throughput(kafka, files["kafka"], expected,
                                                  plan.kafka_rounds, baseline_cmd=baseline_cmd)
                    topic["name"] = k.pop("_topic")
                    results["kafka"] = {**results.get("kafka", {}), **k}

                if "kafka" in sections:
                    await _async_section(results, "kafka", throughput)

                    async def latency() -> None:
                        k = results.setdefault("kafka", {})
                        # Half the capacity measured in this run (the target's load);
                        # the plan's fixed rate only if throughput did not run.
                        capacity = k.get("events_per_s") or 0
                        offered = int(capacity // 2) if capacity else plan.latency_rate
                        share = round(offered / capacity, 3) if capacity else None
                        # The throughput file's events: the capacity above is for this mix.
                        lat = await kb.bench_latency(kafka, offered, plan.latency_seconds,
                                                     plan.latency_warmup_s, src=files["kafka"])
                        lat["offered_share_of_capacity"] = share
                        k["at_rate"] = lat
                        k["latency_ms_p50"] = lat["latency_ms_p50"]
                        k["latency_ms_p99"] = lat["latency_ms_p99"]
                        k["at_low_rate"] = await kb.bench_latency(
                            kafka, plan.latency_low_rate, plan.latency_seconds,
                            plan.latency_warmup_s, src=files["kafka"])
                        # A heavier load at the same rate: every event a command + audit.
                        heavy = await kb.bench_latency(kafka, offered, plan.latency_seconds,
                                                       plan.latency_warmup_s)
                        heavy["offered_share_of_capacity"] = share
                        k["at_rate_every_event_a_command"] = heavy

                    await _async_section(results, "latency", latency)
                if "scale" in sections:
                    async def scale() -> None:
                        if "name" not in topic:
                            topic["name"] = f"bench-scale-{kb._uid()}"
                            await kafka.prefill(topic["name"], files["kafka"])
                        results["scale"] = await kb.bench_scale(
                            kafka, topic["name"], plan.kafka_events, expected,
                            plan.scale_rounds, src=files["kafka"])

                    await _async_section(results, "scale", scale)
            if "memory" in sections:
                path, sessions = files["memory"], _count_sessions(files["memory"])

                async def memory() -> None:
                    results.setdefault("memory", {})["worker"] = await kb.bench_memory(
                        kafka, files["memory_warm"], path, sessions)

                await _async_section(results, "memory_worker", memory)
        finally:
            await kafka.close()

    try:
        asyncio.run(main())
    finally:
        broker.stop()
    version: str = broker.version
    return version


def _count_sessions(path: Path) -> int:
    """Distinct session ids among the well-formed lines."""
    seen: set[str] = set()
    with path.open("rb") as fh:
        for line in fh:
            try:
                sid = orjson.loads(line)["session"]["id"]
            except (orjson.JSONDecodeError, KeyError, TypeError):
                continue
            if isinstance(sid, str):
                seen.add(sid)
    return len(seen)


async def _async_section(results: dict[str, Any], name: str, fn: Callable[[], Any]) -> None:
    started = time.monotonic()
    try:
        await fn()
    except Exception as exc:
        results["errors"][name] = f"{type(exc).__name__}: {exc}"
        log(f"{name} failed: {exc}\n{traceback.format_exc()}")
    results["section_seconds"][name] = round(time.monotonic() - started, 1)
    gc.collect()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small inputs, fewer rounds")
    p.add_argument("--only", nargs="+", choices=SECTIONS, help="run only these sections")
    p.add_argument("--json", type=Path, help="results file (default by mode)")
    p.add_argument("--markdown", type=Path, help="Markdown report (default by mode)")
    p.add_argument("--baseline-cmd", default=os.environ.get("SESSIONWARDEN_BENCH_BASELINE"),
                   help="another `sessionwarden` executable (e.g. the previous code's venv) "
                        "that runs in the same interleaved Kafka rounds as a third contender "
                        "(default: $SESSIONWARDEN_BENCH_BASELINE)")
    args = p.parse_args(argv)
    mode = "quick" if args.quick else "full"
    plan = QUICK if args.quick else FULL
    sections = tuple(args.only or SECTIONS)
    # Only a complete full run replaces the published figures.
    partial = args.quick or args.only is not None
    json_path = args.json or (OUT / f"results-{mode}{'-only' * bool(args.only)}.json"
                              if partial else REPO / "bench" / "results.json")
    md_path = args.markdown or (OUT / f"BENCHMARKS-{mode}{'-only' * bool(args.only)}.md"
                                if partial else REPO / "BENCHMARKS.md")
    log(f"{mode} run: {', '.join(sections)}")
    results = run(plan, mode, sections, args.baseline_cmd.split() if args.baseline_cmd else None)
    json_path.parent.mkdir(parents=True, exist_ok=True)
    json_path.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    report.write(results, md_path)
    log(f"done in {results['duration_s']:.0f}s -> {json_path}, {md_path}")
    for row in results["targets"]:
        log(f"  {row['target']}: {row['value']} ({row['goal']}) "
            f"{'met' if row['met'] else 'NOT met' if row['met'] is False else 'not run'}")
    return 1 if results["errors"] else 0


if __name__ == "__main__":
    sys.exit(main())
