"""The `sessionwarden` command line: one entry point, one module per command family.

Exit status: 0 when the run completed (even with dead letters), 2 when it
could not run (unreadable input, bad policy, missing database).
"""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError

from detectors import PolicyError
from worker.about import package_version
from worker.cli.enforce import add_enforce_commands
from worker.cli.ingest import add_ingest_commands
from worker.cli.kafka import add_kafka_commands
from worker.cli.netclass import add_netclass_command
from worker.cli.replay import add_replay_command
from worker.cli.report import add_report_commands
from worker.cli.score import add_score_command
from worker.cli.signals import add_signals_commands
from worker.enrich import EnrichmentError
from worker.errors import CouldNotRun, settings_error
from worker.signals.keys import SigningKeyError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sessionwarden",
        description="Session-risk worker: device-binding detectors and session commands.")
    parser.add_argument("--version", action="version",
                        version=f"%(prog)s {package_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    add_replay_command(sub)
    add_report_commands(sub)
    add_kafka_commands(sub)
    add_netclass_command(sub)
    add_score_command(sub)
    add_signals_commands(sub)
    add_enforce_commands(sub)
    add_ingest_commands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except ValidationError as exc:
        return _could_not_run(settings_error(exc))
    except (CouldNotRun, PolicyError, EnrichmentError, SigningKeyError) as exc:
        return _could_not_run(exc)
    except KeyboardInterrupt:
        return 130


def _could_not_run(exc: Exception) -> int:
    """One line on stderr, exit status 2 (the README's promise)."""
    text = " ".join(str(exc).split())
    print(f"sessionwarden: {text}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
