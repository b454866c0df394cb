"""Result records of `session-enforcement` (key = session id), one per command.

Fixed key order (orjson keeps insertion order), so consumers and tests can
compare bytes. `calls` lists the HTTP exchanges (method, path, status) that
produced the outcome -- never headers, tokens or bodies.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from worker.idp.base import Call, Outcome


def iso(ts: float) -> str:
    """Seconds since the epoch -> `2026-11-27T10:00:00.000Z`."""
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{int(ts * 1000) % 1000:03d}Z"


def result(*, command_id: str, session_id: str, tenant: str, type: str | None,
           outcome: Outcome, target: str | None, http_status: int | None = None,
           attempts: int = 0, reason: str | None = None, mode: str = "enforce",
           cause_event_id: str | None = None, issued_at: str | None = None,
           in_doubt: bool = False, breaker: str | None = None,
           resolution: str | None = None, operator: str | None = None,
           calls: list[Call] | None = None, at: float | None = None) -> dict[str, Any]:
    """One result; `at` is when the outcome was known (wall clock)."""
    return {
        "command_id": command_id,
        "session_id": session_id,
        "tenant": tenant,
        "type": type,
        "outcome": outcome.value,
        "target": target,
        "http_status": http_status,
        "attempts": attempts,
        "at": iso(time.time() if at is None else at),
        "reason": reason,
        "mode": mode,
        "cause_event_id": cause_event_id,
        "issued_at": issued_at,
        "in_doubt": in_doubt,
        "breaker": breaker,
        "resolution": resolution,
        "operator": operator,
        "calls": [[c.method, c.path, c.status] for c in calls or ()],
    }
