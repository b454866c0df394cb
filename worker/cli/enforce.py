"""`sessionwarden enforce` (the enforcer) and its operator verbs `held|release|discard|retry`.

aiokafka, httpx and aiohttp are imported inside the commands, so `--help`
stays fast.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import logging
import signal
import sys
from typing import Any

from worker.cli.options import settings_from_args
from worker.cli.running import fail, run_or_fail, setup_logging


def cmd_enforce(args: argparse.Namespace) -> int:
    """Run the enforcer until SIGTERM/SIGINT (finish the batch, commit, exit 0)."""
    from worker.enforce.service import Enforcer  # noqa: PLC0415
    from worker.enforce.targets import TargetsError  # noqa: PLC0415

    settings = settings_from_args(args)
    updates = {"targets_file": args.targets, "enforce_group": args.group,
               "enforce_web_port": args.web_port}
    settings = settings.model_copy(update={k: v for k, v in updates.items() if v is not None})
    setup_logging(settings.log_level, settings.log_format)
    try:
        enforcer = Enforcer.from_settings(settings)  # PolicyError: exit 2 in main()
    except TargetsError as exc:
        return fail(str(exc))
    return int(run_or_fail(_run(settings, enforcer, web=not args.no_web), "enforce"))


async def _run(settings: Any, enforcer: Any, *, web: bool) -> int:
    from worker.enforce.app import EnforcerApp, TopicMismatch, ensure_enforcer_topics  # noqa: PLC0415
    from worker.enforce.service import close_clients  # noqa: PLC0415

    clients = enforcer.clients

    try:
        if settings.create_topics:
            await ensure_enforcer_topics(settings)
    except TopicMismatch as exc:
        print(f"sessionwarden: {exc}", file=sys.stderr)
        return 2
    app = EnforcerApp(settings, enforcer)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, app.stop)
    runner = await app.serve_web(settings.enforce_web_host, settings.enforce_web_port) \
        if web else None
    logging.getLogger("sessionwarden.enforce").info("enforcer started", extra={
        "group": settings.enforce_group, "commands": settings.commands_topic,
        "results": settings.results_topic, "tenants": sorted(clients)})
    try:
        await app.run()
    finally:
        if runner is not None:
            await runner.cleanup()
        await close_clients(clients)
    return 0


def cmd_held(args: argparse.Namespace) -> int:
    from worker.codec import dumps_line  # noqa: PLC0415
    from worker.enforce.operator import read_state  # noqa: PLC0415

    settings = settings_from_args(args)
    store = run_or_fail(read_state(settings), "enforce held")
    if isinstance(store, int):
        return store
    chosen = store.failed(args.tenant) if args.failed else store.held(args.tenant)
    for e in sorted(chosen, key=lambda e: (e.tenant, e.ts_ms)):
        sys.stdout.write(dumps_line({"command_id": e.command_id, "tenant": e.tenant,
                                     "session_id": e.session_id, "type": e.type,
                                     "ts_ms": e.ts_ms}).decode())
    return 0


def cmd_resolve(args: argparse.Namespace) -> int:
    from worker.enforce.commands import DISCARD, RELEASE, RETRY  # noqa: PLC0415
    from worker.enforce.operator import read_state, select_held, send_controls  # noqa: PLC0415

    if not args.all and not args.command_id:
        return fail(f"{args.enforce_action} needs --command-id ID (repeatable) or --all")
    settings = settings_from_args(args)
    action = {"release": RELEASE, "discard": DISCARD, "retry": RETRY}[args.enforce_action]
    failed = action == RETRY
    operator = args.operator or getpass.getuser()

    async def go() -> tuple[int, list[str]]:
        store = await read_state(settings)
        chosen, missing = select_held(store, args.tenant, None if args.all else args.command_id,
                                      failed=failed)
        if missing:
            return 0, missing
        return await send_controls(settings, action, chosen, operator), []

    outcome = run_or_fail(go(), f"enforce {args.enforce_action}")
    if isinstance(outcome, int):
        return outcome
    sent, missing = outcome
    if missing:
        return fail(f"not {'failed' if failed else 'held'} for tenant {args.tenant!r}: "
                    f"{', '.join(missing)}")
    print(f"{args.enforce_action}: {sent} {'failed' if failed else 'held'} command(s) of "
          f"tenant {args.tenant!r} "
          f"sent to the enforcer", file=sys.stderr)
    return 0


def add_enforce_commands(sub: Any) -> None:
    """Register `enforce` (and its operator verbs) on the main parser."""
    p = sub.add_parser("enforce", help="apply session commands at the IdP (Keycloak, Auth0, Okta)",
                       description="Consume session-commands, apply each command once through "
                                   "the tenant's IdP admin API and publish one result per "
                                   "command to session-enforcement. Rails (rate limit, breaker, "
                                   "dry run) come from the policy's [enforcement] section; "
                                   "IdP targets and credentials from the targets file. "
                                   "See docs/enforcement.md.")
    p.add_argument("--broker", help="bootstrap servers, e.g. kafka://localhost:9092")
    p.add_argument("--policy", dest="policy_file", help="policy TOML with [enforcement]")
    p.add_argument("--targets", help="targets TOML (IdP and credentials per tenant)")
    p.add_argument("--group", help="consumer group (default sessionwarden-enforcer)")
    p.add_argument("--web-port", type=int, help="port of /health and /metrics (default 6067)")
    p.add_argument("--no-web", action="store_true", help="no web server")
    p.add_argument("--no-create-topics", action="store_true",
                   help="do not create missing topics at start-up")
    p.add_argument("--log-level", help="DEBUG|INFO|WARNING|ERROR")
    p.add_argument("--log-format", choices=("json", "text"), help="log line format")
    p.set_defaults(func=cmd_enforce)
    verbs = p.add_subparsers(dest="enforce_action", metavar="{held,release,discard,retry}")
    h = verbs.add_parser("held", help="list the commands the breaker holds")
    h.add_argument("--tenant", default=None, help="only this tenant")
    h.add_argument("--failed", action="store_true",
                   help="list failed commands (retryable) instead")
    h.add_argument("--broker", help="bootstrap servers")
    h.set_defaults(func=cmd_held)
    for verb, what in (("release", "apply held commands now (bypassing the breaker)"),
                       ("discard", "drop held commands for good (never applied)"),
                       ("retry", "apply failed commands again (e.g. after an IdP outage)")):
        v = verbs.add_parser(verb, help=what)
        v.add_argument("--tenant", required=True)
        group = v.add_mutually_exclusive_group()
        group.add_argument("--command-id", action="append", help="a held command (repeatable)")
        group.add_argument("--all", action="store_true",
                           help="every held (retry: failed) command of the tenant")
        v.add_argument("--operator", help="recorded in the result (default: login name)")
        v.add_argument("--broker", help="bootstrap servers")
        v.set_defaults(func=cmd_resolve)
