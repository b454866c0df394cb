"""`sessionwarden push-signals` on a real broker, to a real SSF receiver (RFC 8935).

Why: at-least-once is a property of the whole loop -- consume, POST, retry,
dead-letter, commit -- across a crash. The demo's SETs are put on a signals
topic, pushed to a loopback receiver that fails some requests and refuses
one SET, the pusher is killed mid-stream and restarted, and in the end every
SET reached the receiver (duplicates allowed, de-duplicated by jti), the
refused one sits in the signals DLQ with the receiver's reason, and the
consumer group has committed everything.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient

from tests.integration.worker_harness import (
    PYTHON,
    REPO,
    Collector,
    Deployment,
    demo_lines,
    replay_expected,
    write_lines,
)
from tests.kafka_plugin import create_topics
from tests.ssf_receiver import Receiver
from worker.signals.keys import SigningKey, jwks

pytestmark = [pytest.mark.kafka, pytest.mark.asyncio]


def start_pusher(d: Deployment, endpoint: str, group: str, log: Path) -> subprocess.Popen[bytes]:
    env = d.env(push_endpoint=endpoint, push_group=group, push_backoff="0.05",
                push_backoff_max="0.2", push_max_attempts="50", log_level="INFO")
    with log.open("ab") as fh:
        return subprocess.Popen([PYTHON, "-m", "worker", "push-signals"], cwd=REPO, env=env,
                                stdout=subprocess.PIPE, stderr=fh)


async def wait_until(predicate: Callable[[], bool], what: str, timeout: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def test_push_delivers_every_set_at_least_once_across_a_crash(
        kafka_bootstrap: str, unique_topic_prefix: str, tmp_path: Path) -> None:
    d = Deployment(kafka_bootstrap, unique_topic_prefix, partitions=2)
    t = d.topics
    expected = replay_expected(write_lines(tmp_path / "demo.jsonl", demo_lines(tmp_path)),
                               tmp_path / "replay")
    records = [orjson.loads(v) for v in expected.signals]
    jtis = [r["jti"] for r in records]
    assert len(set(jtis)) == len(jtis) > 50
    refused = jtis[len(jtis) // 3]
    await create_topics(kafka_bootstrap, {t["signals"]: 2, t["signals_dlq"]: 2})
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap)
    await producer.start()
    try:
        for value, record in zip(expected.signals, records, strict=True):
            await producer.send(t["signals"], value, key=record["session_id"].encode())
        await producer.send_and_wait(t["signals"], b"not a signals record", key=b"junk")
    finally:
        await producer.stop()

    def respond(n: int, jti: str | None) -> tuple[int, dict[str, str] | None, dict[str, str]] \
            | None:
        if jti == refused:
            return 400, {"err": "invalid_request", "description": "test refusal"}, {}
        if n % 7 == 3:
            return 503, None, {}  # transient: retried
        return None

    key_jwks = jwks([SigningKey.from_file(Path(d.env()["SESSIONWARDEN_SIGNING_KEY_FILE"]))])
    group = f"{unique_topic_prefix}-push"
    with Receiver(key_jwks, respond=respond).running() as rx:
        first = start_pusher(d, rx.url, group, tmp_path / "push-a.log")
        try:
            await wait_until(lambda: len(rx.accepted()) >= len(jtis) // 2, "half the SETs")
        finally:
            first.send_signal(signal.SIGKILL)  # no commit of the batch in flight
            first.wait(10)
        second = start_pusher(d, rx.url, group, tmp_path / "push-b.log")
        try:
            want = set(jtis) - {refused}
            await wait_until(lambda: set(rx.accepted()) >= want, "every SET")
            async with Collector(kafka_bootstrap, {t["signals_dlq"]: 2}) as c:
                # Both dead letters, not just two records: after the crash the refused
                # SET may be dead-lettered twice before the junk record's turn comes.
                def both() -> bool:
                    values = {r.value for r in c.records[t["signals_dlq"]]}
                    jtis_seen = {r.headers.get("sessionwarden.jti")
                                 for r in c.records[t["signals_dlq"]]}
                    return b"not a signals record" in values and refused.encode() in jtis_seen

                await c.wait_for(both, what="the DLQ")
                await c.settle(0.5)
        finally:
            second.send_signal(signal.SIGTERM)
            out, _ = second.communicate(timeout=60)
    assert second.returncode == 0, (tmp_path / "push-b.log").read_text()[-2000:]
    accepted = rx.accepted()
    assert set(accepted) == set(jtis) - {refused}
    assert all(r.claims is not None for r in rx.requests if r.jti)  # every one verified
    assert any(r.status == 503 for r in rx.requests)  # retries happened
    summary = orjson.loads(out)
    assert summary["delivered"] > 0

    dlq = {r.headers.get("sessionwarden.jti"): r for r in c.records[t["signals_dlq"]]}
    refused_record = dlq[refused.encode()]
    assert orjson.loads(refused_record.value)["jti"] == refused  # the original bytes
    assert refused_record.headers["sessionwarden.err"] == b"invalid_request"
    assert refused_record.headers["sessionwarden.http_status"] == b"400"
    junk = [r for r in c.records[t["signals_dlq"]] if r.value == b"not a signals record"]
    assert junk and junk[0].headers["sessionwarden.error"] == b"not a session-signals record"

    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    assert sum(o.offset for tp, o in committed.items() if tp.topic == t["signals"]) \
        == len(jtis) + 1
    print(f"\nPUSH {len(jtis)} SETs, {len(rx.requests)} requests, "
          f"{len(accepted) - len(set(accepted))} duplicates after the crash")
