"""`sessionwarden score`: rate a replay's decisions against a labelled corpus."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any


def cmd_score(args: argparse.Namespace) -> int:
    from worker.codec import dumps_pretty  # noqa: PLC0415 - keep `--help` fast
    from worker.evaluation.records import ScoreInputError  # noqa: PLC0415
    from worker.evaluation.report import render  # noqa: PLC0415
    from worker.evaluation.score import score  # noqa: PLC0415

    try:
        report = score(Path(args.out_dir), Path(args.labels))
    except ScoreInputError as exc:
        print(f"sessionwarden: {exc}", file=sys.stderr)
        return 2
    if not args.sessions:
        del report["sessions"]
    if args.json:
        sys.stdout.write(dumps_pretty(report).decode())
    else:
        render(report, sys.stdout)
    return 0


def add_score_command(sub: Any) -> None:
    p = sub.add_parser("score", help="score a replay output directory against corpus labels")
    p.add_argument("out_dir", metavar="OUT_DIR", help="replay output directory (--out of replay)")
    p.add_argument("--labels", required=True, metavar="FILE",
                   help="labels (JSON Lines) written by data/generate_labelled.py")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    p.add_argument("--sessions", action="store_true",
                   help="with --json: include every session's outcome")
    p.set_defaults(func=cmd_score)
