"""`sessionwarden ingest keycloak` against a real Keycloak and Kafka: no duplicates, no gaps.

Each poll runs as its own process (`--once`), so the cursor must come back
from Kafka (the compacted cursor topic, written in the same transaction as
the events) for the second poll to send exactly the events that are new.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid

import orjson
import pytest

from tests.integration.worker_harness import PYTHON, REPO, Collector, Deployment
from tests.kafka_plugin import create_topics
from tests.keycloak_plugin import load_keycloak_local

pytestmark = [pytest.mark.kafka, pytest.mark.keycloak, pytest.mark.asyncio]


def poll_once(d: Deployment, url: str, realm: str, secret: str) -> None:
    env = d.env() | {"SESSIONWARDEN_KEYCLOAK_CLIENT_SECRET": secret}
    out = subprocess.run([PYTHON, "-m", "worker", "ingest", "keycloak", "--url", url,
                          "--realm", realm, "--client-id", "sessionwarden-enforcer", "--once"],
                         cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
                         check=False)
    assert out.returncode == 0, out.stderr


async def test_each_event_arrives_once_across_restarts(
        kafka_bootstrap: str, keycloak_url: str, unique_topic_prefix: str) -> None:
    kl = load_keycloak_local()
    realm = f"ingest-{uuid.uuid4().hex[:8]}"
    kit = await asyncio.to_thread(lambda: kl.RealmKit(keycloak_url, realm).create(
        users=["alice"]))
    d = Deployment(kafka_bootstrap, unique_topic_prefix)
    await create_topics(kafka_bootstrap, {d.topics["input"]: d.partitions})
    first = [await asyncio.to_thread(kit.login, "alice", "89.160.20.112") for _ in range(3)]
    async with Collector(kafka_bootstrap, {d.topics["input"]: d.partitions}) as c:
        await asyncio.to_thread(poll_once, d, keycloak_url, realm, kit.enforcer_secret)
        await c.wait_for(lambda: c.count(d.topics["input"]) >= 3, timeout=30, what="3 logins")
        for login in first:
            status, _ = await asyncio.to_thread(kit.refresh, login["refresh_token"],
                                                "89.160.20.112")
            assert status == 200
        await asyncio.to_thread(poll_once, d, keycloak_url, realm, kit.enforcer_secret)
        await asyncio.to_thread(poll_once, d, keycloak_url, realm, kit.enforcer_secret)
        await c.wait_for(lambda: c.count(d.topics["input"]) >= 6, timeout=30, what="6 events")
        await c.settle(1.5)
        records = c.records[d.topics["input"]]
        events = [orjson.loads(r.value) for r in records]
    ids = [e["id"] for e in events]
    assert len(ids) == len(set(ids)) == 6, ids
    assert sorted(e["type"] for e in events) == ["LOGIN"] * 3 + ["REFRESH_TOKEN"] * 3
    assert {e["realmName"] for e in events} == {realm}
    # keyed like every input: tenant (the realm) and user (worker.routing)
    assert all(r.key == f"{realm}\x1f{e['userId']}".encode()
               for r, e in zip(records, events, strict=True))
    assert {e["sessionId"] for e in events} == {str(x["session_state"]) for x in first}
