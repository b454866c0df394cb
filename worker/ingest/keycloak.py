"""`sessionwarden ingest keycloak`: poll a realm's events into `session-events`.

Why a poller: it needs nothing installed in Keycloak -- a service account
with the `realm-management` role `view-events` is enough -- which is what
most Keycloak operators can get. (The alternative, an event-listener SPI
provider that writes to Kafka from inside Keycloak, is discussed in
docs/enforcement.md.)

API: `GET /admin/realms/{realm}/events?dateFrom=<epoch ms>&direction=asc&first=&max=`
(https://www.keycloak.org/docs-api/latest/rest-api/index.html#_realms_admin,
"Get events"); each event has `id`, `time` (ms), `type`, `realmId`,
`sessionId`, `ipAddress`, `userId`, `clientId`, `details`.

No duplicates, no gaps:

* the cursor is (newest delivered `time`, ids delivered at or after
  `time - overlap`); each poll asks from `time - overlap`, so an event
  committed late with an older timestamp (up to `overlap`) is still found,
  and the ids make re-reads of the overlap harmless;
* events and the new cursor are written in ONE Kafka transaction (the cursor
  goes to a compacted topic keyed by base URL + realm): after a crash either
  both are visible or neither, so a restart neither re-sends nor skips;
* paging is ascending by time with `first`; new events only ever insert at or
  after the cursor, which shifts later pages right (a re-read the ids absorb),
  never left (a skip).

Each event is sent as Keycloak wrote it, plus `realmName` (the polled realm)
when absent, so the tenant of its commands is the realm's name rather than
its internal id. Key = the session id (`sessionId`), as `produce` does.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

import httpx
import orjson

from worker.idp.base import IdpError
from worker.idp.http import AdminHttp, RetryPolicy, TokenSource, client_credentials

log = logging.getLogger("sessionwarden.ingest")


@dataclass(slots=True)
class Cursor:
    """Where the poller is: newest delivered event time, and ids near it."""

    time: int = 0
    seen: dict[str, int] = field(default_factory=dict)
    """event id -> time, for events with time >= self.time - overlap."""

    def to_bytes(self) -> bytes:
        return orjson.dumps({"time": self.time, "seen": self.seen})

    @classmethod
    def from_bytes(cls, data: bytes | None) -> Cursor:
        if not data:
            return cls()
        raw = orjson.loads(data)
        seen = raw.get("seen") if isinstance(raw, dict) else None
        return cls(int(raw.get("time") or 0),
                   {str(k): int(v) for k, v in (seen or {}).items()})

    def advanced(self, events: Iterable[dict[str, Any]], overlap_ms: int) -> Cursor:
        """The cursor after `events` were delivered."""
        seen = dict(self.seen)
        newest = self.time
        for e in events:
            seen[str(e["id"])] = int(e["time"])
            newest = max(newest, int(e["time"]))
        floor = newest - overlap_ms
        return Cursor(newest, {k: t for k, t in seen.items() if t >= floor})


class KeycloakEvents:
    """Reads a realm's user events through the admin REST API."""

    def __init__(self, base_url: str, realm: str, client_id: str, client_secret: str, *,
                 page_size: int = 500, max_pages: int = 20, overlap_ms: int = 5000,
                 transport: httpx.AsyncBaseTransport | None = None,
                 retry: RetryPolicy | None = None) -> None:
        base = base_url.rstrip("/")
        self.realm = realm
        self.cursor_key = f"{base}|{realm}"
        self.page_size = page_size
        self.max_pages = max_pages
        self.overlap_ms = overlap_ms
        self.http = AdminHttp(base, None, concurrency=2, transport=transport, retry=retry)
        token_url = f"{base}/realms/{quote(realm, safe='')}/protocol/openid-connect/token"
        form = {"grant_type": "client_credentials", "client_id": client_id,
                "client_secret": client_secret}
        raw = self.http.client

        async def fetch() -> tuple[str, float]:
            return await client_credentials(raw, token_url, form)

        self.http.tokens = TokenSource(fetch)
        self._path = f"/admin/realms/{quote(realm, safe='')}/events"

    async def poll(self, cursor: Cursor) -> list[dict[str, Any]]:
        """Events not yet delivered, oldest first (at most max_pages pages)."""
        since = max(0, cursor.time - self.overlap_ms)
        fresh: dict[str, dict[str, Any]] = {}
        for page in range(self.max_pages):
            params = {"dateFrom": str(since), "direction": "asc",
                      "first": str(page * self.page_size), "max": str(self.page_size)}
            response, _ = await self.http.request("GET", self._path, params=params,
                                                  ok=frozenset({200}))
            events = response.json()
            if not isinstance(events, list):
                raise IdpError(f"GET {self._path}: not a JSON list")
            for e in events:
                if not isinstance(e, dict) or not isinstance(e.get("id"), str) \
                        or not isinstance(e.get("time"), int):
                    log.warning("keycloak event without id/time skipped", extra={"event": e})
                    continue
                if e["id"] not in cursor.seen:
                    if "realmName" not in e:
                        e["realmName"] = self.realm
                    fresh[e["id"]] = e
            if len(events) < self.page_size:
                break
        return sorted(fresh.values(), key=lambda e: (e["time"], e["id"]))

    async def aclose(self) -> None:
        await self.http.aclose()

