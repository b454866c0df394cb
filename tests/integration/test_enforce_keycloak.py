"""The whole loop against a real Keycloak and a real Kafka (issue 10).

Keycloak events -> `sessionwarden ingest keycloak` -> Kafka -> the worker ->
`session-commands` -> `sessionwarden enforce` -> Keycloak's admin API, all
real processes. The policy given to the worker makes an ASN change a revoke
for certain (it does not depend on the default policy): the hijacker's
refresh comes from 216.160.83.56 (AS209, Milton WA in the bundled test
databases) seconds after a login from 89.160.20.112 (AS29518, Linkoping SE).
Keycloak reads the client address from X-Forwarded-For (proxy headers on),
so the test can present both networks.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.integration.enforce_harness import (
    enforce_env,
    enforcer,
    ingest,
    result_for,
    results,
    results_topic,
    secret_env,
    write_targets,
)
from tests.integration.worker_harness import PYTHON, REPO, Collector, Deployment, WorkerProcess
from tests.keycloak_plugin import load_keycloak_local

pytestmark = [pytest.mark.kafka, pytest.mark.keycloak, pytest.mark.asyncio, pytest.mark.slow]

HOME_IP = "89.160.20.112"  # AS29518 (Bredband2), Linkoping SE
HIJACK_IP = "216.160.83.56"  # AS209, Milton WA US

POLICY = """
[detectors.asn_binding]
action = "revoke"
[detectors.impossible_travel]
action = "revoke"
[detectors.ip_binding]
action = "alert"
[detectors.ua_drift]
action = "off"
[detectors.anonymous_network]
action = "alert"

[enforcement]
mode = "enforce"
revocations_per_second = 50
revocation_burst = 50

[enforcement.tenants."{mass}".breaker]
min_sessions = 3
threshold = 0.5
"""


def user_sessions(kit: Any, user: str) -> list[str]:
    """Ids of the user's live sessions, straight from Keycloak's admin API."""
    kl = load_keycloak_local()
    token = kit.admin_token()
    base = f"{kit.base_url}/admin/realms/{kit.realm}"
    status, users, _ = kl.http_json("GET", f"{base}/users?username={user}&exact=true",
                                    token=token)
    assert status == 200 and users, users
    status, sessions, _ = kl.http_json("GET", f"{base}/users/{users[0]['id']}/sessions",
                                       token=token)
    assert status == 200, sessions
    return [s["id"] for s in sessions]


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "worker", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120, check=False)


async def test_hijack_is_revoked_benign_survives_breaker_holds_mass_revocation(
        kafka_bootstrap: str, keycloak_url: str, unique_topic_prefix: str,
        tmp_path: Path) -> None:
    kl = load_keycloak_local()
    tag = uuid.uuid4().hex[:8]
    realm, mass = f"acme-{tag}", f"mass-{tag}"
    # 1) a realm, clients and users, through the admin API
    kit = await asyncio.to_thread(lambda: kl.RealmKit(keycloak_url, realm).create(
        users=["alice", "bob"]))
    crowd = [f"user{i}" for i in range(6)]
    mkit = await asyncio.to_thread(lambda: kl.RealmKit(keycloak_url, mass).create(users=crowd))
    policy = tmp_path / "policy.toml"
    policy.write_text(POLICY.format(mass=mass))
    targets = write_targets(tmp_path / "targets.toml", keycloak_url, [realm, mass])
    secrets = secret_env(realm, kit.enforcer_secret) | secret_env(mass, mkit.enforcer_secret)

    d = Deployment(kafka_bootstrap, unique_topic_prefix)
    worker = WorkerProcess(d, f"{unique_topic_prefix}-app", tmp_path / "state",
                           tmp_path / "worker.log", policy_file=str(policy)).start()
    enf = enforcer(d, tmp_path, targets, policy, secrets).start()
    feeds = [ingest(d, tmp_path, keycloak_url, realm, kit.enforcer_secret),
             ingest(d, tmp_path, keycloak_url, mass, mkit.enforcer_secret)]
    try:
        await worker.wait_ready()
        await enf.wait_ready()
        for feed in feeds:
            feed.start()
        topics = {results_topic(d): d.partitions, d.topics["commands"]: d.partitions}
        async with Collector(kafka_bootstrap, topics) as c:
            # 2) real logins: alice and bob from home; bob keeps working from home
            alice = await asyncio.to_thread(kit.login, "alice", HOME_IP)
            bob = await asyncio.to_thread(kit.login, "bob", HOME_IP)
            a_sid, b_sid = str(alice["session_state"]), str(bob["session_state"])
            status, bob2 = await asyncio.to_thread(kit.refresh, bob["refresh_token"], HOME_IP)
            assert status == 200, bob2
            await asyncio.sleep(1.0)  # the logins are in Keycloak's event store
            # 4) the hijack: alice's refresh token used from another network
            hijacked_at = time.monotonic()
            status, stolen = await asyncio.to_thread(kit.refresh, alice["refresh_token"],
                                                     HIJACK_IP)
            assert status == 200, stolen
            # 5) the enforcer revokes it
            await c.wait_for(lambda: any(r["outcome"] == "applied"
                                         for r in result_for(c, d, a_sid)),
                             timeout=90, what="alice's session revoked")
            revoked_after = time.monotonic() - hijacked_at
            # 6) the stolen refresh token, and alice's own, are now rejected
            for token in (stolen["refresh_token"], alice["refresh_token"]):
                status, body = await asyncio.to_thread(kit.refresh, token, HIJACK_IP)
                assert status == 400, body
                assert body["error"] == "invalid_grant", body
                assert body["error_description"] == "Session not active", body
            assert a_sid not in await asyncio.to_thread(user_sessions, kit, "alice")
            # the benign session survives: no command, still refreshable
            status, body = await asyncio.to_thread(kit.refresh, bob2["refresh_token"], HOME_IP)
            assert status == 200, body
            assert b_sid in await asyncio.to_thread(user_sessions, kit, "bob")
            commands = [orjson.loads(r.value) for r in c.records[d.topics["commands"]]]
            assert not [x for x in commands if x["session_id"] == b_sid]
            (alice_result,) = result_for(c, d, a_sid)
            assert alice_result["tenant"] == realm and alice_result["http_status"] == 204
            path = f"/admin/realms/{realm}/sessions/{a_sid}"
            assert sorted(map(tuple, alice_result["calls"])) == [
                ("DELETE", path, 204), ("DELETE", f"{path}?isOffline=true", 404)]

            # the mass revocation: six sessions hijacked at once, breaker trips at 3 seen
            logins = [await asyncio.to_thread(mkit.login, u, HOME_IP) for u in crowd]
            await asyncio.sleep(1.0)
            for login in logins:
                status, _ = await asyncio.to_thread(mkit.refresh, login["refresh_token"],
                                                    HIJACK_IP)
                assert status == 200
            sids = {str(x["session_state"]) for x in logins}

            def mass_results() -> list[dict[str, Any]]:
                return [r for r in results(c, d) if r["session_id"] in sids]

            await c.wait_for(lambda: len(mass_results()) >= 6, timeout=90,
                             what="six results for the mass revocation")
            outcomes = sorted(r["outcome"] for r in mass_results())
            assert outcomes == ["applied"] * 2 + ["held_by_breaker"] * 4, outcomes
            held = {r["session_id"]: r["command_id"] for r in mass_results()
                    if r["outcome"] == "held_by_breaker"}
            live = {s for u in crowd for s in await asyncio.to_thread(user_sessions, mkit, u)}
            assert set(held) <= live, "held revokes must not have been applied"
            assert not (sids - set(held)) & live, "the two applied revokes killed their sessions"

            # the operator: list, discard one, release the rest
            env = enforce_env(d)
            listed = cli(env, "enforce", "held", "--tenant", mass)
            assert listed.returncode == 0, listed.stderr
            assert {orjson.loads(line)["command_id"] for line in listed.stdout.splitlines()} \
                == set(held.values())
            keep_sid, keep_cid = sorted(held.items())[0]
            done = cli(env, "enforce", "discard", "--tenant", mass, "--command-id", keep_cid,
                       "--operator", "test-operator")
            assert done.returncode == 0, done.stderr
            done = cli(env, "enforce", "release", "--tenant", mass, "--all",
                       "--operator", "test-operator")
            assert done.returncode == 0, done.stderr
            await c.wait_for(lambda: len(mass_results()) >= 10, timeout=60,
                             what="the operator's four final results")
            final = {r["session_id"]: r for r in mass_results() if r["resolution"]}
            assert final[keep_sid]["resolution"] == "discarded"
            assert final[keep_sid]["outcome"] == "held_by_breaker"
            released = [r for s, r in final.items() if s != keep_sid]
            assert len(released) == 3
            assert all(r["outcome"] == "applied" and r["resolution"] == "released"
                       and r["operator"] == "test-operator" for r in released)
            live = {s for u in crowd for s in await asyncio.to_thread(user_sessions, mkit, u)}
            assert live == {keep_sid}
            metrics = await asyncio.to_thread(enf.metrics)
            held_line = f'sessionwarden_enforce_held_commands{{tenant="{mass}"}} 0.0'
            trips_line = f'sessionwarden_enforce_breaker_trips_total{{tenant="{mass}"}} 1.0'
            assert held_line in metrics and trips_line in metrics
            print(f"\nHIJACK refresh -> session dead at Keycloak: {revoked_after:.2f}s")
    finally:
        for feed in feeds:
            feed.terminate()
        assert enf.terminate() == 0, enf.tail()
        assert worker.terminate() == 0, worker.tail()
