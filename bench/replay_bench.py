"""`replay`: events/s of `sessionwarden replay` vs a bare orjson round trip.

Both run as separate processes on the same file and are timed as whole
processes (wall clock from spawn to exit, interpreter start included), in
alternating order, so each round gives one paired ratio. The reported ratio
is the median of the per-round ratios: on a busy machine both halves of a
pair see about the same load, so the pair's ratio is steadier than either.
"""

from __future__ import annotations

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


def run_replay(src: Path, out_dir: Path) -> ReplayRun:
    """Time one `sessionwarden replay SRC --out DIR` process from spawn to exit."""
    shutil.rmtree(out_dir, ignore_errors=True)
    cmd = [*sessionwarden_cmd(), "replay", str(src), "--out", str(out_dir)]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"replay failed ({proc.returncode}): {proc.stderr.decode()[-2000:]}")
    summary = orjson.loads((out_dir / "summary.json").read_bytes())
    return ReplayRun(seconds, int(summary["events_read"]), summary)


def run_roundtrip(src: Path, dst: Path) -> ReplayRun:
    """Time one `python -m bench.orjson_roundtrip SRC DST` process from spawn to exit."""
    t0 = time.perf_counter()
    proc = subprocess.run([PY, "-m", "bench.orjson_roundtrip", str(src), str(dst)],
                          capture_output=True, check=False, cwd=Path(__file__).parent.parent)
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        raise RuntimeError(f"orjson round trip failed: {proc.stderr.decode()[-2000:]}")
    dst.unlink(missing_ok=True)
    return ReplayRun(seconds, int(proc.stdout.split()[-1]), {})


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
                 full_src: Path | None = None, work: Path = OUT) -> dict[str, Any]:
    """Interleaved replay / orjson rounds on src (plus one pair on full_src if given)."""
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
    shutil.rmtree(out_dir, ignore_errors=True)
    return result
