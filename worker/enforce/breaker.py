"""The circuit breaker: hold revokes when too large a share of sessions is being revoked.

Why: a broken GeoIP or ASN update makes every session look hijacked at once;
automatic revocation would then log out the whole company. The breaker
compares, per tenant, over a sliding window of `window_seconds`:

* numerator: distinct sessions revoked (applied, or would-be in dry run);
* denominator: distinct sessions of the tenant that appeared on
  `session-commands` (any command type) in the window.

A revoke trips the breaker when, counting it, numerator / denominator exceeds
`threshold` while the denominator is at least `min_sessions` (below that the
share says little). Once tripped the breaker stays open -- every further
revoke of the tenant is held -- until an operator has released or discarded
every held command (`sessionwarden enforce release|discard`); it never
closes by itself, since the window sliding on is no evidence that the cause
is fixed. Time is the command records' Kafka timestamps, so the window is
rebuilt identically from the state topic after a restart.

The denominator only sees sessions that received a command; with a policy
that issues few non-revoke commands it under-counts, which makes the breaker
trip earlier (the safe direction). docs/enforcement.md discusses the choice.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from worker.enforce.rails import BreakerConfig


@dataclass(slots=True)
class _Window:
    seen: dict[str, int] = field(default_factory=dict)
    seen_order: deque[tuple[int, str]] = field(default_factory=deque)
    revoked: dict[str, int] = field(default_factory=dict)
    revoked_order: deque[tuple[int, str]] = field(default_factory=deque)

    def prune(self, now_ms: int, window_ms: int) -> None:
        limit = now_ms - window_ms
        for order, last in ((self.seen_order, self.seen), (self.revoked_order, self.revoked)):
            while order and order[0][0] < limit:
                ts, session = order.popleft()
                if last.get(session) == ts:
                    del last[session]


class Breaker:
    """Sliding-window share of revoked sessions, per tenant."""

    def __init__(self) -> None:
        self._windows: dict[str, _Window] = {}

    def _window(self, tenant: str) -> _Window:
        w = self._windows.get(tenant)
        if w is None:
            w = self._windows[tenant] = _Window()
        return w

    def observe(self, tenant: str, session_id: str, ts_ms: int) -> None:
        """A command for this session arrived (the denominator)."""
        w = self._window(tenant)
        w.seen[session_id] = ts_ms
        w.seen_order.append((ts_ms, session_id))

    def record_revoke(self, tenant: str, session_id: str, ts_ms: int) -> None:
        """This session is being revoked (the numerator)."""
        w = self._window(tenant)
        w.revoked[session_id] = ts_ms
        w.revoked_order.append((ts_ms, session_id))

    def share(self, tenant: str, session_id: str, ts_ms: int,
              cfg: BreakerConfig) -> tuple[int, int]:
        """(revoked sessions counting this one, sessions seen) in the window ending now."""
        w = self._window(tenant)
        w.prune(ts_ms, int(cfg.window_seconds * 1000))
        revoked = len(w.revoked) + (0 if session_id in w.revoked else 1)
        return revoked, max(len(w.seen), 1)

    def would_trip(self, tenant: str, session_id: str, ts_ms: int, cfg: BreakerConfig) -> bool:
        if not cfg.enabled:
            return False
        revoked, seen = self.share(tenant, session_id, ts_ms, cfg)
        return seen >= cfg.min_sessions and revoked / seen > cfg.threshold

    def reset(self, tenant: str) -> None:
        """Forget the tenant's window (after an operator resolved every held command)."""
        self._windows.pop(tenant, None)
