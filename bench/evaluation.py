"""Labelled evaluation: generate the corpus, replay it, score it (issue 9 item 11).

``evaluate(out_dir, ...)`` returns a JSON-ready dict; ``make bench-evaluation``
writes the before/after comparison to bench/evaluation_results.json, which
BENCHMARKS.md renders (``bench.report.evaluation_section``). Standalone:

    .venv/bin/python -m bench.evaluation                       # default corpus
    .venv/bin/python -m bench.evaluation --benign 200 --hijack 50 --json
    .venv/bin/python -m bench.evaluation --compare bench/policies/before-issue-9.toml \
        --results bench/evaluation_results.json     # before/after table (BENCHMARKS.md)

Replay runs in a subprocess through the real CLI, exactly as a user runs it;
its wall time is reported next to the corpus size.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from bench.common import BIN, OUT, PY, REPO, log, rnd, write_atomically


def evaluate(out_dir: Path, benign: int = 20, hijack: int = 10, history_days: int = 14,
             seed: int = 9, policy: str | None = None) -> dict[str, Any]:
    """Generate, replay and score one labelled corpus; the score plus sizes and timings."""
    out_dir.mkdir(parents=True, exist_ok=True)
    events, labels, replay_out = (out_dir / "corpus.jsonl", out_dir / "labels.jsonl",
                                  out_dir / "replay")
    log(f"evaluation: generating {benign} benign and {hijack} hijacked sessions per scenario")
    subprocess.run([PY, str(REPO / "data" / "generate_labelled.py"), "--out", str(events),
                    "--labels", str(labels), "--benign-per-scenario", str(benign),
                    "--hijack-per-scenario", str(hijack), "--history-days", str(history_days),
                    "--seed", str(seed)], check=True)
    cmd = [str(BIN / "sessionwarden"), "replay", str(events), "--out", str(replay_out)]
    if policy:
        cmd += ["--policy", policy]
    started = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    elapsed = time.perf_counter() - started
    run = subprocess.run([str(BIN / "sessionwarden"), "score", str(replay_out), "--labels",
                          str(labels), "--json"], check=True, capture_output=True)
    report: dict[str, Any] = orjson.loads(run.stdout)
    n_events = sum(1 for _ in events.open("rb"))
    report["corpus"] = {"events": n_events, "bytes": events.stat().st_size,
                        "benign_per_scenario": benign, "hijack_per_scenario": hijack,
                        "history_days": history_days, "seed": seed, "policy": policy}
    report["replay_wall_s"] = rnd(elapsed)
    return report


def _rate(x: float | None) -> str:
    return "" if x is None else f"{100 * x:.1f} %"


def compare_table(before: dict[str, Any], after: dict[str, Any]) -> str:
    """Markdown: per scenario, what the before and after policies did (same corpus)."""
    rows = ["| scenario | label | sessions | before | after |", "|---|---|---|---|---|"]

    def cell(s: dict[str, Any]) -> str:
        if s["label"] == "hijack":
            return (f"revoked {_rate(s['revoked_rate'])}, stepped up "
                    f"{_rate(s['stepped_up_rate'])}, missed {_rate(s['missed_rate'])}")
        return (f"false revoke {_rate(s['false_revoke_rate'])}, false step-up "
                f"{_rate(s['false_step_up_rate'])}")

    old = {(s["scenario"], s["phase"]): s for s in before["scenarios"]}
    for s in after["scenarios"]:
        b = old.get((s["scenario"], s["phase"]))
        name = s["scenario"] + (" (learning history)" if s["phase"] == "learning" else "")
        rows.append(f"| {name} | {s['label']} | {s['sessions']:,} | "
                    f"{cell(b) if b else ''} | {cell(s)} |")
    o, n = before["overall"], after["overall"]
    keys = ("hijack_revoked_rate", "hijack_acted_on_first_request_rate", "hijack_missed_rate",
            "benign_false_revoke_rate", "benign_false_step_up_rate",
            "benign_known_countries_false_step_up_rate", "learning_false_revoke_rate")
    rows.extend(f"| **{key}** | | | {_rate(o.get(key))} | {_rate(n.get(key))} |"
                for key in keys)
    return "\n".join(rows) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--benign", type=int, default=20, help="benign sessions per scenario")
    p.add_argument("--hijack", type=int, default=10, help="hijacked sessions per scenario")
    p.add_argument("--history-days", type=int, default=14)
    p.add_argument("--seed", type=int, default=9)
    p.add_argument("--policy", help="policy TOML for replay (default: built-in)")
    p.add_argument("--out", type=Path, default=OUT / "evaluation")
    p.add_argument("--json", action="store_true")
    p.add_argument("--compare", metavar="BEFORE_POLICY",
                   help="also replay the same corpus under this policy; print a before/after table")
    p.add_argument("--results", type=Path, help="write the report(s) to this JSON file")
    args = p.parse_args(argv)
    if args.compare:
        after = evaluate(args.out / "after", args.benign, args.hijack, args.history_days,
                         args.seed, args.policy)
        before = evaluate(args.out / "before", args.benign, args.hijack, args.history_days,
                          args.seed, args.compare)
        if args.results:
            write_atomically(args.results, orjson.dumps({"before": before, "after": after},
                                                        option=orjson.OPT_INDENT_2))
        sys.stdout.write(compare_table(before, after))
        return 0
    report = evaluate(args.out, args.benign, args.hijack, args.history_days, args.seed,
                      args.policy)
    if args.json:
        sys.stdout.write(orjson.dumps(report, option=orjson.OPT_INDENT_2).decode() + "\n")
        return 0
    subprocess.run([str(BIN / "sessionwarden"), "score", str(args.out / "replay"), "--labels",
                    str(args.out / "labels.jsonl")], check=True)
    c = report["corpus"]
    print(f"corpus: {c['events']:,} events, {c['bytes']:,} bytes; replay {report['replay_wall_s']}"
          f" s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
