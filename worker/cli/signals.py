"""The session-signals commands: `sessionwarden push-signals` and `sessionwarden jwks`.

`push-signals` delivers the signals topic to an SSF receiver (RFC 8935,
worker/signals/push.py); `jwks` prints the public JWK Set of the configured
signing key, for receivers that take a static JWKS or a file served
elsewhere. Heavy imports stay inside the commands so `--help` stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from worker.cli.options import settings_from_args


def cmd_push_signals(args: argparse.Namespace) -> int:
    from worker.codec import dumps_pretty  # noqa: PLC0415
    from worker.logs import logging_config  # noqa: PLC0415
    from worker.signals.push import EXIT_UNDELIVERABLE, Undeliverable, push_signals  # noqa: PLC0415

    settings = settings_from_args(args)
    overrides = {name: value for name, value in (
        ("push_endpoint", args.endpoint), ("push_group", args.group),
        ("signals_topic", args.topic)) if value}
    if overrides:
        settings = settings.model_copy(update=overrides)
    if not settings.push_endpoint:
        print("sessionwarden: set --endpoint or SESSIONWARDEN_PUSH_ENDPOINT to the SSF "
              "receiver's push URL", file=sys.stderr)
        return 2
    import logging.config  # noqa: PLC0415

    logging.config.dictConfig(logging_config(settings.log_level, settings.log_format))
    try:
        stats = asyncio.run(push_signals(settings))
    except Undeliverable as exc:
        print(f"sessionwarden: {exc}; offsets not committed", file=sys.stderr)
        return EXIT_UNDELIVERABLE
    sys.stdout.write(dumps_pretty(stats.as_dict()).decode())
    return 0


def cmd_jwks(args: argparse.Namespace) -> int:
    from worker.codec import dumps_pretty  # noqa: PLC0415
    from worker.signals.tokens import Signer  # noqa: PLC0415

    signer = Signer.from_settings(settings_from_args(args), ephemeral_ok=False)
    if signer is None:
        print("sessionwarden: no signing key configured (SESSIONWARDEN_SIGNING_KEY_FILE or "
              "SESSIONWARDEN_SIGNING_KEY)", file=sys.stderr)
        return 2
    sys.stdout.write(dumps_pretty(signer.jwks()).decode())
    return 0


def add_signals_commands(sub: Any) -> None:
    """Register `push-signals` and `jwks` on the main parser's subcommands."""
    p = sub.add_parser("push-signals", help="push CAEP SETs to an SSF receiver (RFC 8935)",
                       description="Consume the session-signals topic and POST every SET to "
                                   "the receiver, at least once; refused SETs go to the "
                                   "signals DLQ. Exit 75 if the receiver keeps failing.")
    p.add_argument("--endpoint", help="receiver push URL (SESSIONWARDEN_PUSH_ENDPOINT)")
    p.add_argument("--broker", help="bootstrap servers, e.g. kafka://localhost:9092")
    p.add_argument("--topic", help="signals topic (default session-signals)")
    p.add_argument("--group", help="consumer group (default <app id>-push)")
    p.add_argument("--log-level", help="DEBUG|INFO|WARNING|ERROR")
    p.add_argument("--log-format", choices=("json", "text"), help="log line format")
    p.set_defaults(func=cmd_push_signals)

    p = sub.add_parser("jwks", help="print the public JWKS of the SET signing key")
    p.set_defaults(func=cmd_jwks)
