"""How long `sessionwarden report` takes on the 1M-event benchmark log, and how big it is.

    python -m bench.report_bench            # 1,000,000 events / 100,000 sessions
    python -m bench.report_bench --events 20000 --sessions 2000   # a quick look

Generates (or reuses) the seeded benchmark log (`bench.workload.generate`),
replays it once with the CLI, then builds the report twice in-process: with
timelines (the default: the input is re-read for the acted-on sessions) and
without (`--no-timelines`: outputs only). Writes bench/report_results.json.
`--reuse` keeps an earlier replay of the same log and times the report only.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from bench.common import OUT, REPO, log, machine_info
from bench.workload import generate

RESULTS = REPO / "bench" / "report_results.json"


def run(events: int, sessions: int, reuse: bool = False) -> dict[str, Any]:
    from worker.report.render import build_report  # noqa: PLC0415

    src = generate(events, sessions)
    out = OUT / f"report-{events}-{sessions}"
    replay_s: float | None = None
    if not (reuse and (out / "run.json").is_file()):
        log(f"replaying {src.name} -> {out}")
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "worker", "replay", str(src), "--out", str(out),
                        "--json"], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        replay_s = round(time.perf_counter() - started, 1)
    summary = orjson.loads((out / "summary.json").read_bytes())
    outputs = {p.name: p.stat().st_size for p in sorted(out.iterdir())
               if p.suffix in (".jsonl", ".json")}
    log("report with timelines")
    full = build_report(out)
    log("report without timelines")
    lean = build_report(out, timelines=False)
    full = build_report(out)  # leave the full report in place
    return {
        "events": events, "sessions": sessions, "input_bytes": src.stat().st_size,
        "replay_seconds": replay_s,
        "summary": {k: summary[k] for k in ("events_read", "commands", "alerts", "sessions")},
        "revokes": summary["commands_by_type"].get("revoke_session", 0),
        "output_bytes": outputs,
        "report": {"seconds": round(full.seconds, 1), "bytes": full.size,
                   "acted_on_sessions": full.sessions, "timelines": full.timelines,
                   "timeline_source": full.timeline_source, "note": full.note},
        "report_without_timelines": {"seconds": round(lean.seconds, 1), "bytes": lean.size},
        "machine": machine_info(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--results", type=Path, default=RESULTS)
    parser.add_argument("--reuse", action="store_true",
                        help="keep an earlier replay of the same log (time the report only)")
    args = parser.parse_args(argv)
    result = run(args.events, args.sessions, args.reuse)
    args.results.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2) + b"\n")
    log(f"report: {result['report']['seconds']}s, {result['report']['bytes'] / 1e6:.1f} MB; "
        f"without timelines {result['report_without_timelines']['seconds']}s -> {args.results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
