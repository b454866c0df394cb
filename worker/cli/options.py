"""Options shared by several subcommands, and Settings built from them.

Settings come from the environment (SESSIONWARDEN_*); a flag that was given
overrides its variable. Every subcommand module imports this one, never each
other, so the CLI has no import cycle.
"""

from __future__ import annotations

import argparse
from typing import Any

from worker.formats import FORMATS
from worker.settings import DecisionSettings, Settings

_FLAG_SETTINGS = ("policy_file", "city_db", "asn_db", "pyasn_db", "anonymous_db", "broker",
                  "app_id", "data_dir", "web_port", "web_host", "store", "input_topic",
                  "log_level", "log_format", "batch_size")


def add_data_options(p: argparse.ArgumentParser) -> None:
    """The decision inputs shared by replay and the worker: policy, format, databases."""
    p.add_argument("--policy", dest="policy_file", help="policy TOML file (default: built-in)")
    p.add_argument("--format", choices=FORMATS, help="force the input format (default: auto)")
    p.add_argument("--city-db", help="MaxMind-format City database")
    p.add_argument("--asn-db", help="MaxMind-format ASN database")
    p.add_argument("--pyasn-db", help="pyasn IPASN data file (fallback ASN source)")
    p.add_argument("--anonymous-db", help="MaxMind-format Anonymous-IP database")


def add_json_option(p: argparse.ArgumentParser) -> None:
    """--json: the machine summary on stdout even on a terminal (see worker.cli.terminal)."""
    p.add_argument("--json", action="store_true",
                   help="print the JSON summary on stdout (the default when stdout is not a "
                        "terminal); otherwise a short human summary")


def _overrides(args: argparse.Namespace, kind: type[DecisionSettings]) -> dict[str, Any]:
    """The flags that were given, as settings of `kind` (the environment does the rest)."""
    overrides: dict[str, Any] = {name: getattr(args, name) for name in _FLAG_SETTINGS
                                 if getattr(args, name, None) is not None}
    if getattr(args, "format", None):
        overrides["input_format"] = args.format
    if getattr(args, "partitions", None) is not None:
        overrides["topic_partitions"] = args.partitions
    if getattr(args, "no_web", False):
        overrides["web_enabled"] = False
    if getattr(args, "no_create_topics", False):
        overrides["create_topics"] = False
    known = set(kind.model_fields)
    return {k: v for k, v in overrides.items() if k in known}


def decision_settings(args: argparse.Namespace) -> DecisionSettings:
    """What replay needs, and only that: a bad worker-only variable cannot stop it."""
    return DecisionSettings(**_overrides(args, DecisionSettings))


def settings_from_args(args: argparse.Namespace) -> Settings:
    """Settings of the Kafka commands from the environment, then the given flags."""
    return Settings(**_overrides(args, Settings))
