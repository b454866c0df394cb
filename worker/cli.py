"""The `sessionwarden` command line: replay, worker, produce.

Exit status: 0 when the run completed (even with dead letters), 2 when it
could not run (unreadable input, bad policy, missing database).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from detectors import PolicyError
from worker.enrich import Enricher, EnrichmentError
from worker.formats import FORMATS
from worker.policy_file import load_policy
from worker.settings import Settings


def build_enricher(settings: Settings) -> Enricher:
    return Enricher(settings.city_db or None, settings.asn_db or None,
                    settings.pyasn_db or None, settings.anonymous_db or None)


def _settings(args: argparse.Namespace) -> Settings:
    overrides: dict[str, object] = {}
    for name in ("policy_file", "city_db", "asn_db", "pyasn_db", "anonymous_db", "broker"):
        value = getattr(args, name, None)
        if value is not None:
            overrides[name] = value
    if getattr(args, "format", None):
        overrides["input_format"] = args.format
    return Settings(**overrides)  # type: ignore[arg-type]


def cmd_replay(args: argparse.Namespace) -> int:
    from worker.replay import replay  # noqa: PLC0415 - keep `--help` fast

    settings = _settings(args)
    files = [Path(f) for f in args.files]
    for f in files:
        if not f.is_file():
            print(f"sessionwarden: cannot read input file {f}", file=sys.stderr)
            return 2
    policy = load_policy(settings.policy_file)
    enricher = build_enricher(settings)
    started = time.perf_counter()
    summary = replay(files, Path(args.out), policy, enricher, settings.input_format)
    elapsed = time.perf_counter() - started
    from worker.codec import dumps_pretty  # noqa: PLC0415

    sys.stdout.write(dumps_pretty(summary).decode())
    rate = summary["events_read"] / elapsed if elapsed > 0 else 0.0
    print(f"replayed {summary['events_read']:,} records in {elapsed:.2f}s "
          f"({rate:,.0f} records/s) -> {args.out}", file=sys.stderr)
    return 0


def _add_data_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--policy", dest="policy_file", help="policy TOML file (default: built-in)")
    p.add_argument("--format", choices=FORMATS, help="force the input format (default: auto)")
    p.add_argument("--city-db", help="MaxMind-format City database")
    p.add_argument("--asn-db", help="MaxMind-format ASN database")
    p.add_argument("--pyasn-db", help="pyasn IPASN data file (fallback ASN source)")
    p.add_argument("--anonymous-db", help="MaxMind-format Anonymous-IP database")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sessionwarden",
        description="Session-risk worker: device-binding detectors and session commands.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("replay", help="replay log files through the pipeline, no Kafka")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--out", required=True, metavar="DIR", help="output directory")
    _add_data_options(p)
    p.set_defaults(func=cmd_replay)
    try:
        from worker.kafka_cli import add_kafka_commands  # noqa: PLC0415
    except ImportError:  # pragma: no cover - only while bootstrapping
        pass
    else:
        add_kafka_commands(sub, _add_data_options)
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
