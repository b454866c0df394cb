"""kill -9 of the enforcer mid-run: nothing lost, nothing applied twice (issue 10).

Real Keycloak sessions, revoke commands on a real Kafka topic, the enforcer
as a subprocess behind a counting proxy (bench/enforce_drill.py). The kill
is timed to land while a command's DELETE has reached Keycloak but its
result is not yet written -- the in-doubt case -- and the restarted
enforcer must neither lose it nor send it again. A second, memory-less
enforcer over the same commands then shows that the check does fail when
commands are applied twice.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from bench.enforce_drill import CountingProxy, check_drill, revoke_command
from tests.integration.enforce_harness import enforcer, results, results_topic, secret_env
from tests.integration.enforce_harness import write_targets as _write_targets
from tests.integration.worker_harness import Collector, Deployment
from tests.kafka_plugin import create_topics
from tests.keycloak_plugin import load_keycloak_local

pytestmark = [pytest.mark.kafka, pytest.mark.keycloak, pytest.mark.asyncio, pytest.mark.slow]

SESSIONS = 60
POLICY = """
[enforcement]
revocations_per_second = 40
revocation_burst = 1
[enforcement.breaker]
enabled = false
"""


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def state_records(c: Collector, topic: str) -> dict[str, str]:
    """command id -> last state seen on the state topic."""
    last: dict[str, str] = {}
    for r in c.records[topic]:
        last[(r.key or b"").decode()] = orjson.loads(r.value)["state"]
    return last


async def test_kill_9_mid_run_loses_nothing_and_applies_nothing_twice(
        kafka_bootstrap: str, keycloak_url: str, unique_topic_prefix: str,
        tmp_path: Path) -> None:
    kl = load_keycloak_local()
    realm = f"drill-{uuid.uuid4().hex[:8]}"
    kit = await asyncio.to_thread(lambda: kl.RealmKit(keycloak_url, realm).create(
        users=["victim"]))
    logins = [await asyncio.to_thread(kit.login, "victim", "89.160.20.112")
              for _ in range(SESSIONS)]
    sessions = [(str(x["session_state"]), claims(str(x["access_token"]))["sub"]) for x in logins]
    commands = [revoke_command(i, realm, sid, uid) for i, (sid, uid) in enumerate(sessions)]

    d = Deployment(kafka_bootstrap, unique_topic_prefix)
    state_topic = f"{d.prefix}-enforcement-state"
    await create_topics(kafka_bootstrap, {d.topics["commands"]: d.partitions,
                                          results_topic(d): d.partitions,
                                          state_topic: d.partitions},
                        configs={state_topic: {"cleanup.policy": "compact"}})
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    for cmd in commands:
        await producer.send(d.topics["commands"], orjson.dumps(cmd),
                            key=cmd["session_id"].encode())
    await producer.flush()
    await producer.stop()

    proxy = CountingProxy(keycloak_url)
    await proxy.start()
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY)
    targets = _write_targets(tmp_path / "targets.toml", proxy.url, [realm])
    env = secret_env(realm, kit.enforcer_secret)
    first = enforcer(d, tmp_path, targets, policy, env, name="enforcer-a",
                     enforce_batch_size=10)
    topics = {results_topic(d): d.partitions, state_topic: d.partitions}
    try:
        async with Collector(kafka_bootstrap, topics) as c:
            first.start()

            def in_doubt_now() -> bool:
                """Some command's DELETE reached Keycloak, and its result is not written."""
                states = state_records(c, state_topic)
                pending = {cid for cid, s in states.items() if s == "intent"}
                sent = {sid for sid, _ in sessions if proxy.revoking_calls(sid)}
                return len(results(c, d)) >= 10 and any(
                    cmd["session_id"] in sent for cmd in commands
                    if cmd["command_id"] in pending)

            await c.wait_for(in_doubt_now, timeout=120, what="a command in doubt")
            first.kill()
            at_kill = len(results(c, d))
            assert at_kill < SESSIONS, "the kill must land mid-run"
            second = enforcer(d, tmp_path, targets, policy, env, name="enforcer-b",
                              enforce_batch_size=10).start()
            try:
                await c.wait_for(lambda: {r["command_id"] for r in results(c, d)}
                                 >= {x["command_id"] for x in commands},
                                 timeout=120, what="a result for every command")
                await c.settle(1.5)
            finally:
                assert second.terminate() == 0, second.tail()
            report = check_drill(commands, results(c, d), proxy.calls)
            assert report.ok, report.as_dict()
            assert report.in_doubt >= 1, "the kill was timed to leave a command in doubt"
            live = set(await asyncio.to_thread(_user_sessions, kit))
            assert not live & {sid for sid, _ in sessions}, "every hijacked session is dead"
            print(f"\nDRILL killed at {at_kill}/{SESSIONS} results: {report.as_dict()}")

            # The check would fail: an enforcer without memory (fresh group and state
            # topic) over the same commands applies every one of them a second time.
            amnesiac = enforcer(d, tmp_path, targets, policy, env, name="enforcer-amnesiac",
                                group=f"{d.prefix}-amnesiac",
                                enforce_state_topic=f"{d.prefix}-amnesiac-state").start()
            try:
                await c.wait_for(lambda: len(results(c, d)) >= report.results + SESSIONS,
                                 timeout=120, what="the amnesiac enforcer's results")
            finally:
                assert amnesiac.terminate() == 0, amnesiac.tail()
            broken = check_drill(commands, results(c, d), proxy.calls)
            assert not broken.ok
            assert len(broken.double_applied) == SESSIONS
            assert len(broken.duplicate_results) == SESSIONS
            lost = check_drill([*commands, revoke_command(99999, realm, "never-seen", None)],
                               results(c, d)[:report.results], proxy.calls)
            assert lost.lost == [f"drill-{realm}-99999"]
    finally:
        await proxy.stop()
        first.terminate()


def _user_sessions(kit: Any) -> list[str]:
    kl = load_keycloak_local()
    token = kit.admin_token()
    base = f"{kit.base_url}/admin/realms/{kit.realm}"
    _, users, _ = kl.http_json("GET", f"{base}/users?username=victim&exact=true", token=token)
    _, live, _ = kl.http_json("GET", f"{base}/users/{users[0]['id']}/sessions", token=token)
    return [s["id"] for s in live]
