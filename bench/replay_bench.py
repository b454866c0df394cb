"""`replay`: events/s of `sessionwarden replay` vs a bare orjson round trip.

Both run as separate processes on the same file and are timed as whole
processes (wall clock from spawn to exit, interpreter start included), in
alternating order, so each round gives one paired ratio. The reported ratio
is the median of the per-round ratios: on a busy machine both halves of a
pair see about the same load, so the pair's ratio is steadier than either.
"""

from __future__ import annotations

import os
import resource
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from bench.common import OUT, PY, log, median, rate, rnd, sessionwarden_cmd


@dataclass(frozen=True, slots=True)
class ReplayRun:
    """One timed process."""

    seconds: float
    events: int
    summary: dict[str, Any]
    cpu_seconds: float = 0.0
    """User + system CPU of the process and every process it forked (shards)."""


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def run_replay(src: Path, out_dir: Path, jobs: int = 1) -> ReplayRun:
    """Time one `sessionwarden replay SRC --out DIR [--jobs N]` process from spawn to exit."""
    shutil.rmtree(out_dir, ignore_errors=True)
    cmd = [*sessionwarden_cmd(), "replay", str(src), "--out", str(out_dir)]
    if jobs != 1:
        cmd += ["--jobs", str(jobs)]
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    seconds = time.perf_counter() - t0
    cpu = _children_cpu() - cpu0
    if proc.returncode != 0:
        raise RuntimeError(f"replay failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    summary = orjson.loads((out_dir / "summary.json").read_bytes())
    return ReplayRun(seconds, int(summary["events_read"]), summary, cpu)


def _cpu_us(run: ReplayRun) -> float:
    return rnd(run.cpu_seconds / max(run.events, 1) * 1e6, 1)


def bench_jobs(src: Path, rounds: int, work: Path, jobs: int = 2) -> dict[str, Any]:
    """`replay --jobs 1` vs `--jobs N` on src, interleaved; speedup = median paired ratio.

    Each run's CPU (all its processes, from rusage) per event is reported too:
    on a shared 2-core machine the wall-clock speedup depends on what else runs,
    the CPU per event shows what the sharding itself costs.
    """
    out_dir = work / "replay-jobs"
    pairs: list[dict[str, Any]] = []
    for i in range(rounds):
        order = (1, jobs) if i % 2 == 0 else (jobs, 1)
        got = {j: run_replay(src, out_dir, jobs=j) for j in order}
        one, many = got[1], got[jobs]
        pair = {"jobs1_s": rnd(one.seconds), f"jobs{jobs}_s": rnd(many.seconds),
                "jobs1_cpu_us_per_event": _cpu_us(one),
                f"jobs{jobs}_cpu_us_per_event": _cpu_us(many),
                "speedup": rnd(one.seconds / many.seconds if many.seconds else 0.0, 3),
                "loadavg": [round(x, 2) for x in os.getloadavg()]}
        pairs.append(pair)
        log(f"replay --jobs {jobs} round {i + 1}/{rounds}: {pair['jobs1_s']:.1f}s -> "
            f"{pair[f'jobs{jobs}_s']:.1f}s, speedup {pair['speedup']:.2f}")
    shutil.rmtree(out_dir, ignore_errors=True)
    return {"input": src.name, "jobs": jobs, "rounds": pairs,
            "speedup": rnd(median([p["speedup"] for p in pairs]), 3),
            "jobs1_cpu_us_per_event": rnd(median([p["jobs1_cpu_us_per_event"]
                                                  for p in pairs]), 1),
            f"jobs{jobs}_cpu_us_per_event": rnd(median([p[f"jobs{jobs}_cpu_us_per_event"]
                                                        for p in pairs]), 1)}


def run_roundtrip(src: Path, dst: Path) -> ReplayRun:
    """Time one `python -m bench.orjson_roundtrip SRC DST` process from spawn to exit."""
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    proc = subprocess.run([PY, "-m", "bench.orjson_roundtrip", str(src), str(dst)],
                          capture_output=True, check=False, cwd=Path(__file__).parent.parent)
    seconds = time.perf_counter() - t0
    cpu = _children_cpu() - cpu0
    if proc.returncode != 0:
        raise RuntimeError(f"orjson round trip failed: {proc.stderr.decode()[-2000:]}")
    dst.unlink(missing_ok=True)
    return ReplayRun(seconds, int(proc.stdout.split()[-1]), {}, cpu)


def _ratio(replay: ReplayRun, baseline: ReplayRun) -> float:
    base = rate(baseline.events, baseline.seconds)
    return rate(replay.events, replay.seconds) / base if base else 0.0


def startup_seconds(work: Path) -> float:
    """Process cost of a one-line replay: start-up, imports, databases, outputs."""
    one = work / "one-line.jsonl"
    one.write_bytes(b'{"event_id":"e1","type":"login","occurred_at":"2026-11-01T00:00:00Z",'
                    b'"session":{"id":"s1"},"request":{"ip":"81.2.69.161"}}\n')
    return run_replay(one, work / "replay-one").seconds


def bench_replay(src: Path, rounds: int, warmup_src: Path | None = None,
                 full_src: Path | None = None, work: Path = OUT,
                 jobs_rounds: int = 0) -> dict[str, Any]:
    """Interleaved replay / orjson rounds on src (plus one pair on full_src if given).

    With jobs_rounds, `--jobs 1` vs `--jobs 2` pairs on full_src (else src) give
    `jobs2_speedup`.
    """
    work.mkdir(parents=True, exist_ok=True)
    out_dir, rt_file = work / "replay-out", work / "roundtrip.jsonl"
    if warmup_src is not None:  # page cache, pyc files, CPU frequency
        log(f"replay warm-up on {warmup_src.name}")
        run_replay(warmup_src, out_dir)
        run_roundtrip(warmup_src, rt_file)
    pairs: list[dict[str, Any]] = []
    summary: dict[str, Any] = {}
    for i in range(rounds):
        # A,B then B,A: a load change during the round hits both halves alike.
        order = ("replay", "orjson") if i % 2 == 0 else ("orjson", "replay")
        got: dict[str, ReplayRun] = {}
        for which in order:
            got[which] = (run_replay(src, out_dir) if which == "replay"
                          else run_roundtrip(src, rt_file))
        summary = got["replay"].summary
        a, b = got["replay"], got["orjson"]
        pair = {"replay_s": rnd(a.seconds), "orjson_s": rnd(b.seconds),
                "replay_cpu_us_per_event": _cpu_us(a), "orjson_cpu_us_per_event": _cpu_us(b),
                "replay_events_per_s": rnd(rate(a.events, a.seconds), 0),
                "orjson_events_per_s": rnd(rate(b.events, b.seconds), 0),
                "ratio": rnd(_ratio(a, b), 4)}
        pairs.append(pair)
        log(f"replay round {i + 1}/{rounds}: {pair['replay_events_per_s']:,.0f} ev/s, "
            f"orjson {pair['orjson_events_per_s']:,.0f} ev/s, ratio {pair['ratio']:.3f}")
    events = int(summary.get("events_read", 0))
    result: dict[str, Any] = {
        "events_per_s": rnd(median([p["replay_events_per_s"] for p in pairs]), 0),
        "orjson_roundtrip_events_per_s": rnd(median([p["orjson_events_per_s"] for p in pairs]),
                                             0),
        "ratio_to_orjson": rnd(median([p["ratio"] for p in pairs]), 4),
        "cpu_us_per_event": rnd(median([p["replay_cpu_us_per_event"] for p in pairs]), 1),
        "orjson_cpu_us_per_event": rnd(median([p["orjson_cpu_us_per_event"] for p in pairs]),
                                       1),
        "events": events,
        "input_bytes": src.stat().st_size,
        "input": src.name,
        "rounds": pairs,
        "process_startup_s": rnd(startup_seconds(work)),
        "summary": {k: summary.get(k) for k in ("events_read", "events_processed",
                                                "dead_letters", "commands", "audit_events",
                                                "alerts", "duplicates", "sessions")},
    }
    if full_src is not None:
        log(f"replay of the full file {full_src.name} (one pair)")
        a = run_replay(full_src, out_dir)
        b = run_roundtrip(full_src, rt_file)
        result["full_file"] = {
            "input": full_src.name, "events": a.events, "replay_s": rnd(a.seconds),
            "events_per_s": rnd(rate(a.events, a.seconds), 0),
            "orjson_roundtrip_events_per_s": rnd(rate(b.events, b.seconds), 0),
            "ratio_to_orjson": rnd(_ratio(a, b), 4),
            "sessions": a.summary.get("sessions")}
        log(f"full file: {result['full_file']['events_per_s']:,.0f} ev/s, ratio "
            f"{result['full_file']['ratio_to_orjson']:.3f}")
    if jobs_rounds:
        src_jobs = full_src if full_src is not None else src
        log(f"replay --jobs 1 vs --jobs 2 on {src_jobs.name}")
        result["jobs"] = bench_jobs(src_jobs, jobs_rounds, work)
        result["jobs2_speedup"] = result["jobs"]["speedup"]
    shutil.rmtree(out_dir, ignore_errors=True)
    return result
