"""`sessionwarden ingest keycloak`: bring a realm's events into `session-events`."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from typing import Any

from pydantic import SecretStr

from worker.cli.options import settings_from_args
from worker.cli.running import run_or_fail, setup_logging


def cmd_ingest_keycloak(args: argparse.Namespace) -> int:
    from worker.ingest.keycloak import KeycloakEvents  # noqa: PLC0415
    from worker.ingest.runner import IngestRunner  # noqa: PLC0415

    settings = settings_from_args(args)
    setup_logging(settings.log_level, settings.log_format)
    secret = SecretStr(os.environ.get(args.client_secret_env, ""))
    if not secret.get_secret_value():
        print(f"sessionwarden: environment variable {args.client_secret_env} (the client "
              "secret) is not set", file=sys.stderr)
        return 2
    source = KeycloakEvents(args.url, args.realm, args.client_id, secret.get_secret_value(),
                            overlap_ms=settings.ingest_overlap_ms)
    if args.interval is not None:
        settings = settings.model_copy(update={"ingest_poll_interval": args.interval})

    async def go() -> None:
        runner = IngestRunner(settings, source)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, runner.stop)
        try:
            await runner.run(once=args.once)
        finally:
            await source.aclose()

    failed = run_or_fail(go(), "ingest keycloak")
    return failed if isinstance(failed, int) else 0


def add_ingest_commands(sub: Any) -> None:
    p = sub.add_parser("ingest", help="bring IdP events into the input topic")
    sources = p.add_subparsers(dest="source", required=True)
    k = sources.add_parser("keycloak", help="poll a realm's events (admin REST API)",
                           description="Poll GET /admin/realms/{realm}/events with a cursor "
                                       "kept in Kafka; events and cursor are written in one "
                                       "transaction (no duplicates, no gaps).")
    k.add_argument("--url", required=True, help="Keycloak base URL, e.g. https://id.example")
    k.add_argument("--realm", required=True)
    k.add_argument("--client-id", required=True,
                   help="confidential client with a service account (role view-events)")
    k.add_argument("--client-secret-env", default="SESSIONWARDEN_KEYCLOAK_CLIENT_SECRET",
                   help="environment variable holding the client secret")
    k.add_argument("--broker", help="bootstrap servers")
    k.add_argument("--input-topic", help="target topic (default session-events)")
    k.add_argument("--interval", type=float, help="seconds between polls (default 1)")
    k.add_argument("--once", action="store_true", help="poll once and exit")
    k.add_argument("--log-level", help="DEBUG|INFO|WARNING|ERROR")
    k.add_argument("--log-format", choices=("json", "text"), help="log line format")
    k.set_defaults(func=cmd_ingest_keycloak)
