"""Hardening drills of issue 8 on the real broker, with real worker processes.

Why: each case below once stopped a partition, leaked a session, re-decided
old events or crash-looped the worker. They only show with Kafka, Faust and
our start-up code together, so they run against the real broker.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from tests.integration.worker_harness import (
    PYTHON,
    REPO,
    UA,
    Collector,
    Deployment,
    WorkerProcess,
    free_port,
)
from tests.kafka_plugin import load_kafka_local

pytestmark = [pytest.mark.kafka, pytest.mark.asyncio]


def event(event_id: str, session: str, n: int, kind: str = "interaction", *,
          ua: str = UA, tenant: str = "acme", **extra: Any) -> bytes:
    """A native event whose organization idle timeout makes exactly one command."""
    return orjson.dumps({
        "event_id": event_id, "type": kind, "occurred_at": 1795773600000 + n * 1000,
        "tenant": tenant, "session": {"id": session}, "user": {"id": "auth0|7"},
        "organization": {"id": "o", "metadata": {"idle_session_timeout": "900000"}},
        "request": {"ip": "89.160.20.112", "asn": "AS29518", "user_agent": ua}, **extra})


async def send(bootstrap: str, topic: str, records: list[tuple[bytes | None, bytes]],
               partition: int | None = None) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, max_request_size=8 << 20,
                                acks="all", linger_ms=5)
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topic, value, key=key, partition=partition)
        await producer.flush()
    finally:
        await producer.stop()


def commands(c: Collector, d: Deployment) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in c.records[d.topics["commands"]]]


async def test_huge_fields_are_dead_lettered_and_the_partition_moves_on(
        kafka_bootstrap: str, unique_topic_prefix: str, tmp_path: Path) -> None:
    """A 400 KB user agent, a 1 MB event_id, session id or tenant: no crash loop, no stall."""
    d = Deployment(kafka_bootstrap, unique_topic_prefix, partitions=1)
    worker = WorkerProcess(d, f"{unique_topic_prefix}-app", tmp_path / "state",
                           tmp_path / "worker.log").start()
    mb = 1 << 20
    poison = [
        (b"big-ua", event("ua-1", "big-ua", 1, "login", ua=UA + "x" * 400_000)),
        (b"k1", event("x" * mb, "s-eid", 2)),
        (b"k2", event("big-sid", "s" * mb, 3)),
        (b"k3", event("big-tenant", "s-tenant", 4, tenant="t" * mb)),
    ]
    records: list[tuple[bytes | None, bytes]] = []
    for i, rec in enumerate(poison):
        records += [rec, (f"canary-{i}".encode(), event(f"canary-{i}", f"canary-{i}", 10 + i,
                                                        "login"))]
    try:
        await worker.wait_ready()
        async with Collector(kafka_bootstrap, {d.topics[k]: 1 for k in
                                               ("commands", "audit", "dlq")}) as c:
            await send(kafka_bootstrap, d.topics["input"], records)
            await c.wait_for(lambda: {x["cause_event_id"] for x in commands(c, d)}
                             >= {f"canary-{i}" for i in range(4)} | {"ua-1"},
                             timeout=90, what="every canary and the truncated-UA login")
            await c.wait_for(lambda: c.count(d.topics["dlq"]) >= 3, what="three dead letters")
            await c.settle()
            dlq = c.records[d.topics["dlq"]]
            assert sorted(r.headers["sessionwarden.error"].split(b" ")[0] for r in dlq) == [
                b"event_id", b"session.id", b"tenant"]
            assert all(b"limit" in r.headers["sessionwarden.error"] for r in dlq)
            assert {len(r.value) for r in dlq} == {len(v) for _k, v in poison[1:]}, \
                "the original bytes reach the dead letters whole"
            audit = [orjson.loads(r.value) for r in c.records[d.topics["audit"]]
                     if r.key == b"big-ua"]
            assert audit and audit[0]["details"]["event"]["truncated"] == ["user_agent"]
        assert worker.proc is not None and worker.proc.poll() is None, "the worker never exited"
    finally:
        assert worker.terminate() == 0, worker.tail()


async def test_redelivery_of_40_events_decides_nothing_again(
        kafka_bootstrap: str, unique_topic_prefix: str, tmp_path: Path) -> None:
    """40 events of one session stored but not committed, then a crash: nothing twice.

    The 40 events wait in the input topic, so the first worker takes them in
    one batch; it dies right after the batch's outputs and baselines are
    durable and before its offsets are committed (and before any commit at
    all), so Kafka re-delivers all 40 events to the next worker: more than
    the engine's window of 32 event ids. The next worker also has to restore
    the session from the changelog first (a fresh state directory), which
    once made it skip the uncommitted partition's records for good. Also
    checks the exposure fixes on a live worker: Faust's table and router
    views answer 404, /health and /metrics answer.
    """
    d = Deployment(kafka_bootstrap, unique_topic_prefix, partitions=1)
    app_id = f"{unique_topic_prefix}-app"
    records: list[tuple[bytes | None, bytes]] = [
        (b"s-long", event(f"long-{n}", "s-long", n, "login" if n == 0 else "interaction"))
        for n in range(40)]
    # Every interaction re-issues the idle expiry (no minimum extension), so
    # each event makes exactly one command: a re-decided event would show.
    policy = tmp_path / "every-interaction.toml"
    policy.write_text("[tenant]\nmin_idle_extension_ms = 0\n")
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(d.topics["input"], 1, 1)])
    finally:
        await admin.close()
    await send(kafka_bootstrap, d.topics["input"], records)
    first = WorkerProcess(d, app_id, tmp_path / "state-a", tmp_path / "a.log",
                          module="tests.integration.crashing_worker",
                          # the 40 events already wait in the topic: one fetch, one batch
                          extra_env={"CRASH_AFTER_STATE": "1"},
                          policy_file=policy).start()
    assert first.proc is not None
    await asyncio.to_thread(first.proc.wait, 120)
    assert first.proc.returncode == 137, first.tail()
    async with Collector(kafka_bootstrap, {d.topics["commands"]: 1, d.topics["audit"]: 1,
                                           d.topics["alerts"]: 1}) as c:
        await c.wait_for(lambda: c.count(d.topics["commands"]) >= 40, timeout=60,
                         what="the first worker's 40 commands (one batch)")
        await c.settle()
        before = {t: len(rs) for t, rs in c.records.items()}
        assert before[d.topics["commands"]] == 40, "every event decided once"
        second = WorkerProcess(d, app_id, tmp_path / "state-b", tmp_path / "b.log",
                               policy_file=policy).start()
        try:
            await second.wait_ready()
            for path in ("/table/baselines/s-long/", "/table/baselines/", "/router/",
                         "/graph/", "/stats/", "/performance/"):
                status, _body = second.get(path)
                assert status == 404, f"{path} answered {status}: session data must not leak"
            assert second.get("/metrics")[0] == 200 and second.health()[0] == 200
            deadline = time.monotonic() + 120
            while 'outcome="redelivered"} 40.0' not in (m := second.metrics()):
                assert time.monotonic() < deadline, [x for x in m.splitlines()
                                                     if "events_total" in x]
                await asyncio.sleep(0.5)
            await c.settle(2.0)
        finally:
            assert second.terminate() == 0, second.tail()
        after = {t: len(rs) for t, rs in c.records.items()}
    assert after == before, "re-delivered events must not be decided again"


async def test_broker_down_at_start_retries_then_exits_2(tmp_path: Path) -> None:
    port = free_port()  # nothing listens here
    env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONWARDEN_")}
    env.update({"SESSIONWARDEN_BROKER": f"127.0.0.1:{port}", "SESSIONWARDEN_STARTUP_TIMEOUT": "4",
                "SESSIONWARDEN_DATA_DIR": str(tmp_path / "missing" / "parent" / "state"),
                "SESSIONWARDEN_LOG_FORMAT": "text"})
    started = time.monotonic()
    proc = subprocess.run([PYTHON, "-m", "worker", "worker"], env=env, cwd=REPO,
                          capture_output=True, timeout=60, check=False)
    took = time.monotonic() - started
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    attempts = [line for line in err.splitlines() if "not reachable (attempt" in line]
    assert 2 <= len(attempts) <= 8, err
    assert err.strip().splitlines()[-1].startswith("sessionwarden: Kafka broker 127.0.0.1:")
    assert 4 <= took < 30
    assert (tmp_path / "missing" / "parent" / "state").is_dir(), "data-dir parents are created"
    src = tmp_path / "in.jsonl"
    src.write_bytes(event("e1", "s1", 1) + b"\n")
    proc = subprocess.run([PYTHON, "-m", "worker", "produce", str(src)], env=env, cwd=REPO,
                          capture_output=True, timeout=60, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr.decode()


async def test_missing_or_mispartitioned_topics_are_refused(
        kafka_bootstrap: str, unique_topic_prefix: str, tmp_path: Path) -> None:
    d = Deployment(kafka_bootstrap, unique_topic_prefix)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(d.topics["input"], 4, 1),
                                   NewTopic(d.topics["commands"], 2, 1)])
    finally:
        await admin.close()

    def run(**settings: Any) -> subprocess.CompletedProcess[bytes]:
        env = d.env(app_id=f"{unique_topic_prefix}-app", data_dir=tmp_path / "s", **settings)
        return subprocess.run([PYTHON, "-m", "worker", "worker"], env=env, cwd=REPO,
                              capture_output=True, timeout=120, check=False)

    proc = run(create_topics="false")
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "do not exist" in err and d.topics["audit"] in err, err
    proc = run()
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert f"{d.topics['commands']} has 2" in err and "Traceback" not in err


async def test_outputs_too_small_are_refused_an_input_at_the_broker_default_is_not(
        kafka_bootstrap: str, unique_topic_prefix: str, tmp_path: Path) -> None:
    """Every output must take the largest record the worker sends; the input is only read.

    An existing input topic at the broker's 1 MiB default is common (the
    Keycloak ingest once refused to start on one); it only limits producers,
    so the worker warns and runs. A small output topic would make the broker
    refuse records later: that is refused at start, with exit 2.
    """
    d = Deployment(kafka_bootstrap, unique_topic_prefix, partitions=1)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([
            NewTopic(d.topics["input"], 1, 1),  # the broker default: 1 MiB
            NewTopic(d.topics["audit"], 1, 1, topic_configs={"max.message.bytes": "200000"})])
    finally:
        await admin.close()
    env = d.env(app_id=f"{unique_topic_prefix}-app", data_dir=tmp_path / "s")
    proc = subprocess.run([PYTHON, "-m", "worker", "worker"], env=env, cwd=REPO,
                          capture_output=True, timeout=120, check=False)
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert "too small" in last and f"{d.topics['audit']} accepts 200,000 bytes" in last, err
    assert f"{d.topics['input']} accepts" not in last, "the worker never writes its input"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:  # the operator raises the audit topic's limit: the worker starts on the 1 MiB input
        await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, d.topics["audit"],
                                                  configs={"max.message.bytes": "4194304"})])
    finally:
        await admin.close()
    worker = WorkerProcess(d, f"{unique_topic_prefix}-app", tmp_path / "state",
                           tmp_path / "worker.log").start()
    try:
        await worker.wait_ready()
        log_text = (tmp_path / "worker.log").read_text()
        assert "the input topic accepts smaller records than the worker's limit" in log_text
    finally:
        assert worker.terminate() == 0, worker.tail()


async def test_a_record_the_broker_refuses_is_dead_lettered_not_retried_forever(
        kafka_bootstrap: str, unique_topic_prefix: str, tmp_path: Path) -> None:
    d = Deployment(kafka_bootstrap, unique_topic_prefix, partitions=1)
    policy = tmp_path / "policy.toml"
    long = "Invalid network change. " * 40  # 960 characters: every revoke is ~2 KB
    policy.write_text(f'[detectors.asn_binding]\naction = "revoke"\nreason = "{long}"\n'
                      f'[detectors.impossible_travel]\nreason = "{long}"\n')
    worker = WorkerProcess(d, f"{unique_topic_prefix}-app", tmp_path / "state",
                           tmp_path / "worker.log", policy_file=policy).start()
    try:
        await worker.wait_ready()
        # After start-up (which checks sizes), an operator shrinks the commands topic.
        admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
        await admin.start()
        try:
            await admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC,
                                                      d.topics["commands"],
                                                      configs={"max.message.bytes": "1500"})])
        finally:
            await admin.close()
        await asyncio.sleep(1.0)
        hijack = orjson.loads(event("hijack", "s-big", 2))
        hijack["request"] = {"ip": "216.160.83.56", "asn": "AS209", "user_agent": UA}
        records: list[tuple[bytes | None, bytes]] = [
            (b"s-big", event("login", "s-big", 1, "login")),
            (b"s-big", orjson.dumps(hijack)),  # its revoke command is ~1.9 KB: refused
            (b"canary", event("canary", "canary", 3, "login"))]
        async with Collector(kafka_bootstrap, {d.topics["commands"]: 1,
                                               d.topics["dlq"]: 1}) as c:
            await send(kafka_bootstrap, d.topics["input"], records)
            await c.wait_for(lambda: "canary" in {x["cause_event_id"] for x in commands(c, d)},
                             timeout=90, what="the canary after the refused record")
            await c.wait_for(lambda: c.count(d.topics["dlq"]) >= 1, what="the dead letter")
            [dead] = c.records[d.topics["dlq"]]
            assert dead.value == records[1][1]
            assert dead.headers["sessionwarden.error"].startswith(
                b"output rejected by the broker")
            assert {x["cause_event_id"] for x in commands(c, d)} == {"login", "canary"}
        assert worker.proc is not None and worker.proc.poll() is None
    finally:
        assert worker.terminate() == 0, worker.tail()


async def test_a_broker_outage_does_not_flood_the_log(tmp_path: Path,
                                                      unique_topic_prefix: str) -> None:
    """One worker once wrote 17,814 ERROR lines in 13 s of outage; now each repeats rarely."""
    kafka_local = load_kafka_local()
    broker = kafka_local.LocalKafka(tmp_path / "broker", die_with_parent=True)
    bootstrap = broker.start(timeout=120)
    d = Deployment(bootstrap, unique_topic_prefix, partitions=1)
    worker = WorkerProcess(d, f"{unique_topic_prefix}-app", tmp_path / "state",
                           tmp_path / "worker.log").start()
    try:
        await worker.wait_ready()
        broker.stop(keep=True, grace=5.0)
        mark = worker.log.stat().st_size
        await asyncio.sleep(12)
        with worker.log.open("rb") as fh:
            fh.seek(mark)
            lines = fh.read().splitlines()
        noisy = [x for x in lines if b'"level":"ERROR"' in x or b'"level":"WARNING"' in x]
        assert len(noisy) < 60, b"\n".join(noisy[:20]).decode()
        assert sum(len(x) for x in lines) < 100_000
    finally:
        if worker.proc is not None and worker.proc.poll() is None:
            worker.kill()  # no broker to leave the group with: a graceful stop would hang
        broker.stop()
