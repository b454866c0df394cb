"""The Keycloak events poller: cursor, overlap, paging (respx stands in for the API).

The exchange shapes are those of a real Keycloak 26.5 (`GET /admin/realms/{realm}/events`
answered a JSON list of EventRepresentation objects); the real server runs
the poller in tests/integration/test_enforce_keycloak.py.
"""

from __future__ import annotations

from typing import Any

import httpx
import respx

from worker.ingest.keycloak import Cursor, KeycloakEvents
from worker.kafka.produce import keyed_records

KC = "https://id.example.com"


def event(i: int, t: int, session: str = "sess-1", kind: str = "LOGIN") -> dict[str, Any]:
    return {"id": f"ev-{i}", "time": t, "type": kind, "realmId": "4f1c-uuid", "clientId": "app",
            "userId": "user-1", "sessionId": session, "ipAddress": "89.160.20.112",
            "details": {"username": "alice"}}


class FakeEventStore:
    """Answers like Keycloak: dateFrom (ms, inclusive), ascending, first/max paging."""

    def __init__(self, events: list[dict[str, Any]]) -> None:
        self.events = events
        self.requests: list[dict[str, str]] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        q = dict(request.url.params)
        self.requests.append(q)
        since = int(q.get("dateFrom", "0"))
        chosen = sorted((e for e in self.events if e["time"] >= since),
                        key=lambda e: e["time"])
        first, size = int(q.get("first", "0")), int(q.get("max", "100"))
        return httpx.Response(200, json=chosen[first:first + size])


def source(store: FakeEventStore, **kw: Any) -> KeycloakEvents:
    respx.post(f"{KC}/realms/acme/protocol/openid-connect/token").mock(
        return_value=httpx.Response(200, json={"access_token": "t", "expires_in": 300}))
    respx.get(f"{KC}/admin/realms/acme/events").mock(side_effect=store)
    return KeycloakEvents(KC, "acme", "enf", "secret", **kw)


@respx.mock
async def test_polls_page_by_page_and_never_repeats_an_event() -> None:
    store = FakeEventStore([event(i, 1000 + i) for i in range(7)])
    kc = source(store, page_size=3, overlap_ms=5)
    cursor = Cursor()
    first = await kc.poll(cursor)
    assert [e["id"] for e in first] == [f"ev-{i}" for i in range(7)]
    assert [r["first"] for r in store.requests] == ["0", "3", "6"]
    assert all(r["direction"] == "asc" for r in store.requests)
    cursor = cursor.advanced(first, kc.overlap_ms)
    assert cursor.time == 1006 and set(cursor.seen) == {f"ev-{i}" for i in range(1, 7)}
    assert await kc.poll(cursor) == []  # the overlap is re-read, nothing repeats
    assert store.requests[-1]["dateFrom"] == "1001"
    await kc.aclose()


@respx.mock
async def test_a_late_event_inside_the_overlap_is_not_lost() -> None:
    store = FakeEventStore([event(1, 1000), event(2, 2000)])
    kc = source(store, overlap_ms=500)
    cursor = Cursor().advanced(await kc.poll(Cursor()), 500)
    # committed late, with a timestamp before the cursor (another node, a slow transaction)
    store.events.append(event(3, 1800, kind="REFRESH_TOKEN"))
    store.events.append(event(4, 2100, kind="REFRESH_TOKEN"))
    late = await kc.poll(cursor)
    assert [e["id"] for e in late] == ["ev-3", "ev-4"]
    await kc.aclose()


@respx.mock
async def test_events_get_the_realm_name_and_the_routing_key() -> None:
    kc = source(FakeEventStore([event(1, 1000, session="sess-9")]))
    (e,) = await kc.poll(Cursor())
    assert e["realmName"] == "acme" and e["realmId"] == "4f1c-uuid"
    import orjson  # noqa: PLC0415

    ((key, value),) = keyed_records(orjson.dumps(e), "keycloak")
    # routed by tenant (realm) and user, like every other format (worker.routing)
    assert key == b"acme\x1fuser-1" and orjson.loads(value)["realmName"] == "acme"
    await kc.aclose()


def test_cursor_round_trips_and_drops_ids_behind_the_overlap() -> None:
    c = Cursor().advanced([event(1, 1000), event(2, 5000), event(3, 9000)], 4500)
    assert c.time == 9000 and set(c.seen) == {"ev-2", "ev-3"}
    assert Cursor.from_bytes(c.to_bytes()) == c
    assert Cursor.from_bytes(None) == Cursor()
