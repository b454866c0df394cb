"""Running a command's coroutine, with "could not run" as exit 2 and one line.

Shared by the enforce and ingest command modules (which never import each
other): an unreachable broker or IdP is a situation, not a bug, so it is
reported as `sessionwarden: <what> could not run: <reason>` without a
traceback.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any


def setup_logging(level: str, fmt: str) -> None:
    """JSON (or text) log lines on stderr; httpx's per-request lines only at DEBUG."""
    import logging  # noqa: PLC0415
    from logging.config import dictConfig  # noqa: PLC0415

    from worker.logs import logging_config  # noqa: PLC0415

    dictConfig(logging_config(level, fmt))
    if level.upper() != "DEBUG":
        logging.getLogger("httpx").setLevel(logging.WARNING)


def fail(message: str) -> int:
    print(f"sessionwarden: {message}", file=sys.stderr)
    return 2


def run_or_fail(coro: Coroutine[Any, Any, Any], what: str) -> Any:
    """asyncio.run(coro); on a Kafka or network error, print one line and return 2."""
    from aiokafka.errors import KafkaError  # noqa: PLC0415

    try:
        return asyncio.run(coro)
    except (OSError, TimeoutError, KafkaError) as exc:
        return fail(f"{what} could not run: {exc}")
