"""The `sessionwarden` command line: one entry point, one module per command family.

Exit status: 0 when the run completed (even with dead letters), 2 when it
could not run (unreadable input, bad policy, missing database).
"""

from __future__ import annotations

import argparse
import sys

from detectors import PolicyError
from worker.cli.enforce import add_enforce_commands
from worker.cli.ingest import add_ingest_commands
from worker.cli.kafka import add_kafka_commands
from worker.cli.replay import add_replay_command
from worker.enrich import EnrichmentError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sessionwarden",
        description="Session-risk worker: device-binding detectors and session commands.")
    sub = parser.add_subparsers(dest="command", required=True)
    add_replay_command(sub)
    add_kafka_commands(sub)
    add_enforce_commands(sub)
    add_ingest_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except (PolicyError, EnrichmentError) as exc:
        print(f"sessionwarden: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
