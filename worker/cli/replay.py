"""`sessionwarden replay`: the whole pipeline in-process over log files, no Kafka."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from worker.cli.options import add_data_options, settings_from_args


def cmd_replay(args: argparse.Namespace) -> int:
    from worker.codec import dumps_pretty  # noqa: PLC0415 - keep `--help` fast
    from worker.enrich import Enricher  # noqa: PLC0415
    from worker.policy_file import load_policy  # noqa: PLC0415
    from worker.replay import replay  # noqa: PLC0415
    from worker.signals.tokens import Signer  # noqa: PLC0415

    settings = settings_from_args(args)
    files = [Path(f) for f in args.files]
    for f in files:
        if not f.is_file():
            print(f"sessionwarden: cannot read input file {f}", file=sys.stderr)
            return 2
    policy = load_policy(settings.policy_file)
    enricher = Enricher.from_settings(settings)
    signer = Signer.from_settings(settings, ephemeral_ok=True)
    started = time.perf_counter()
    summary = replay(files, Path(args.out), policy, enricher, settings.input_format,
                     signer=signer)
    elapsed = time.perf_counter() - started
    sys.stdout.write(dumps_pretty(summary).decode())
    rate = summary["events_read"] / elapsed if elapsed > 0 else 0.0
    print(f"replayed {summary['events_read']:,} records in {elapsed:.2f}s "
          f"({rate:,.0f} records/s) -> {args.out}", file=sys.stderr)
    if signer is not None and signer.key.ephemeral:
        print(f"signals signed with an ephemeral key (kid {signer.key.kid}), public key in "
              f"{Path(args.out) / 'jwks.json'}; set SESSIONWARDEN_SIGNING_KEY_FILE for "
              "signatures that are the same across runs", file=sys.stderr)
    return 0


def add_replay_command(sub: Any) -> None:
    p = sub.add_parser("replay", help="replay log files through the pipeline, no Kafka")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    add_data_options(p)
    p.set_defaults(func=cmd_replay)
