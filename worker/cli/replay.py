"""`sessionwarden replay`: the whole pipeline in-process over log files, no Kafka."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from worker.cli.options import add_data_options, add_json_option, decision_settings

DEAD_RATIO_WARNING = 0.5
"""Above this share of dead letters, the run says what the likely cause is."""
EXIT_DEAD_RATIO = 1
"""The run completed, but more records were dead than --max-dead-ratio allows."""


def _ratio(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError("must be between 0 and 1")
    return value


MAX_JOBS = 64


def _jobs(text: str) -> int:
    value = int(text)
    if not 1 <= value <= MAX_JOBS:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_JOBS}")
    return value


def dead_ratio_advice(summary: dict[str, Any]) -> str | None:
    """A warning naming the likely cause when most records were dead letters."""
    read = summary["events_read"]
    dead = summary["dead_letters"]
    if not read or dead / read <= DEAD_RATIO_WARNING:
        return None
    reasons: dict[str, int] = summary.get("dead_by_reason") or {}
    top = max(reasons.items(), key=lambda kv: kv[1])[0] if reasons else "unknown"
    return (f"warning: {dead:,} of {read:,} records ({dead / read:.0%}) were dead letters, "
            f"most often '{top}'. Likely causes: the wrong --format, an encrypted or unusual "
            "compressed file, or a file that is not an IdP log export. See dead_letter.jsonl.")


def cmd_replay(args: argparse.Namespace) -> int:
    from worker.about import run_facts, startup_line, test_data_warning  # noqa: PLC0415
    from worker.cli.terminal import replay_summary, wants_json  # noqa: PLC0415
    from worker.codec import dumps_pretty  # noqa: PLC0415 - keep `--help` fast
    from worker.enrich import Enricher  # noqa: PLC0415
    from worker.inputs import check_inputs  # noqa: PLC0415
    from worker.policy_file import load_policy  # noqa: PLC0415
    from worker.replay import replay  # noqa: PLC0415
    from worker.report.manifest import make_manifest  # noqa: PLC0415
    from worker.signals.tokens import Signer  # noqa: PLC0415

    out = Path(args.out)
    inputs = check_inputs(args.files, out)  # before anything else: nothing is written yet
    settings = decision_settings(args)
    policy = load_policy(settings.policy_file)
    enricher = Enricher.from_settings(settings)
    signer = Signer.from_settings(settings, ephemeral_ok=True)
    facts = run_facts(policy, enricher)
    print(startup_line(facts), file=sys.stderr)
    warning = test_data_warning(facts)
    if warning:
        print(warning, file=sys.stderr)
    started = time.perf_counter()
    summary = replay(inputs, out, policy, enricher, settings.input_format, signer=signer,
                     manifest=make_manifest(settings, inputs, facts), jobs=args.jobs)
    elapsed = time.perf_counter() - started
    report = _report(out) if args.report else None
    if wants_json(args.json):
        sys.stdout.write(dumps_pretty(summary).decode())
    else:
        replay_summary(summary, out, elapsed, report)
    rate = summary["events_read"] / elapsed if elapsed > 0 else 0.0
    print(f"replayed {summary['events_read']:,} records in {elapsed:.2f}s "
          f"({rate:,.0f} records/s) -> {args.out}", file=sys.stderr)
    if report is not None:
        print(f"report: {report}", file=sys.stderr)
    if signer is not None and signer.key.ephemeral:
        print(f"signals signed with an ephemeral key (kid {signer.key.kid}), public key in "
              f"{out / 'jwks.json'}; set SESSIONWARDEN_SIGNING_KEY_FILE for "
              "signatures that are the same across runs", file=sys.stderr)
    advice = dead_ratio_advice(summary)
    if advice:
        print(advice, file=sys.stderr)
    limit = args.max_dead_ratio
    read = summary["events_read"]
    if limit is not None and read and summary["dead_letters"] / read > limit:
        print(f"sessionwarden: {summary['dead_letters'] / read:.1%} dead letters is above "
              f"--max-dead-ratio {limit}", file=sys.stderr)
        return EXIT_DEAD_RATIO
    return 0


def _report(out: Path) -> Path:
    """Build report.html in a finished output directory (worker.report)."""
    from worker.report.render import build_report  # noqa: PLC0415 - jinja2 only when asked

    built = build_report(out)
    if built.note:
        print(f"report: {built.note}", file=sys.stderr)
    return built.path


def add_replay_command(sub: Any) -> None:
    p = sub.add_parser("replay", help="replay log files through the pipeline, no Kafka",
                       description="Replay IdP log exports (JSON Lines or JSON documents; "
                                   "gzip/zstd/bzip2/xz detected; '-' for stdin) through the "
                                   "pipeline. Exit 0: completed; 1: completed but above "
                                   "--max-dead-ratio; 2: could not run.")
    p.add_argument("files", nargs="+", metavar="FILE", help="input files, or - for stdin")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    p.add_argument("--max-dead-ratio", type=_ratio, metavar="R",
                   help="exit 1 when more than this share (0-1) of records are dead letters")
    p.add_argument("--jobs", type=_jobs, default=1, metavar="N",
                   help="process the input in N processes, sharded by user and session "
                        "(outputs are byte-identical to one process; stdin runs in one)")
    p.add_argument("--report", action="store_true",
                   help="also write DIR/report.html (see `sessionwarden report`)")
    add_json_option(p)
    add_data_options(p)
    p.set_defaults(func=cmd_replay)

