"""Which Kafka key (and so which partition, worker and state shard) an event belongs to.

Why: decisions read two kinds of state, the session's baseline and the
user's profile (the networks and devices of all that user's sessions). Both
must live where the event is processed, and replay, sharded replay and the
worker must see the same state. So events are routed by **user**: the key
is the tenant and user id; all of a user's sessions land on one partition,
and each session with them (a session belongs to one user).

Events without a user id are routed by their session id. Within one
producer run, a session that was seen with a user keeps that user's key
even on its events that lack one (`RouteMemory`), so its baseline is never
split. Such events read and update no profile unless their session's
baseline names the user (docs/worker.md, "Partitioning").
"""

from __future__ import annotations

from collections import OrderedDict

from detectors.model import SessionEvent

SEPARATOR = "\x1f"
"""Unit separator between tenant and user id: never part of either."""


def user_key(tenant: str, user_id: str) -> str:
    """The state key of a user's profile, and the routing key of their events."""
    return f"{tenant}{SEPARATOR}{user_id}"


def routing_key(event: SessionEvent) -> str:
    """tenant + user id when the event names its user, else the session id."""
    return user_key(event.tenant, event.user_id) if event.user_id else event.session.id


class RouteMemory:
    """Remembers the user key of recent sessions, so a session's events stay together.

    Bounded (least recently used sessions are forgotten first): it serves a
    producer reading a log in order, where a session's events are close.
    """

    def __init__(self, size: int = 1 << 20) -> None:
        self.size = size
        self._by_session: OrderedDict[str, str] = OrderedDict()

    def key(self, event: SessionEvent) -> str:
        sid = event.session.id
        if event.user_id:
            key = user_key(event.tenant, event.user_id)
            self._by_session[sid] = key
            self._by_session.move_to_end(sid)
            if len(self._by_session) > self.size:
                self._by_session.popitem(last=False)
            return key
        return self._by_session.get(sid, sid)
