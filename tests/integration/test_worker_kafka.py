"""The streaming worker on a real Apache Kafka broker (issue 3).

Why: the worker's promises -- the same decisions as replay, no command lost
across a crash, state that follows partitions between workers, poison
records that cannot stall a partition -- only hold if Kafka, Faust and our
ordering (outputs flushed before baselines are stored) work together, so
they are checked against the real broker with real worker processes.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner

from tests.caep import verify
from tests.integration.worker_harness import (
    Collector,
    Deployment,
    WorkerProcess,
    assert_same_decisions,
    demo_lines,
    login_and_asn_change,
    outputs_complete,
    replay_expected,
    write_lines,
)
from worker.kafka.startup import prepare_topics
from worker.settings import Settings

pytestmark = [pytest.mark.kafka, pytest.mark.asyncio]


def output_topics(d: Deployment, *extra: str) -> dict[str, int]:
    t = d.topics
    return {t[k]: d.partitions for k in ("commands", "audit", "alerts", "dlq", "signals")} | \
        dict.fromkeys(
        extra, d.partitions)


def revokes(c: Collector, d: Deployment, session: str) -> list[dict[str, object]]:
    cmds = [orjson.loads(r.value) for r in c.records[d.topics["commands"]]]
    return [x for x in cmds if x["session_id"] == session and x["type"] == "revoke_session"]


def live_view(text: str) -> dict[str, Any]:
    """Findings per detector:action, commands per type (summed over tenants), and more."""
    from prometheus_client.parser import text_string_to_metric_families  # noqa: PLC0415

    findings: Counter[str] = Counter()
    commands: Counter[str] = Counter()
    out: dict[str, Any] = {"build_info": set(), "database_ages": []}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "sessionwarden_findings_total":
                findings[f"{s.labels['detector']}:{s.labels['action']}"] += int(s.value)
            elif s.name == "sessionwarden_tenant_commands_total":
                commands[s.labels["type"]] += int(s.value)
            elif s.name == "sessionwarden_build_info":
                out["build_info"].add(s.labels["policy_version"])
            elif s.name == "sessionwarden_database_age_seconds":
                out["database_ages"].append(s.value)
    out["findings"] = dict(sorted(findings.items()))
    out["commands"] = dict(sorted(commands.items()))
    return out


def has_key(c: Collector, topic: str, key: bytes) -> bool:
    return any(r.key == key for r in c.records[topic])


async def test_end_to_end_worker_publishes_what_replay_writes(
        kafka_bootstrap: str, unique_topic_prefix: str, tmp_path: Path) -> None:
    d = Deployment(kafka_bootstrap, unique_topic_prefix)
    source = write_lines(tmp_path / "events.jsonl", demo_lines(tmp_path))
    expected = replay_expected(source, tmp_path / "replay")
    worker = WorkerProcess(d, f"{unique_topic_prefix}-app", tmp_path / "state",
                           tmp_path / "worker.log").start()
    try:
        await worker.wait_ready()
        async with Collector(kafka_bootstrap, output_topics(d, d.topics["input"])) as c:
            summary = await d.produce(source)
            assert summary["messages_sent"] == expected.summary["events_read"]
            await c.wait_for(outputs_complete(c, d, expected), what="replay's outputs")
            await c.settle()
            counts = assert_same_decisions(c, d, expected)
            assert counts["signals"] == len(expected.signals) > 0
            inputs = c.records[d.topics["input"]]
            outputs = [r for t, rs in c.records.items() if t != d.topics["input"] for r in rs]
            span = (max(r.timestamp for r in outputs) - min(r.timestamp for r in inputs)) / 1000
        metrics = worker.metrics()
        status, health = worker.health()
        jwks_status, jwks_body = worker.get("/jwks.json")
    finally:
        assert worker.terminate() == 0, worker.tail()
    assert status == 200 and health["status"] == "ready"
    assert jwks_status == 200  # the JWKS a receiver fetches verifies what was published
    jwks = orjson.loads(jwks_body)
    for value in c.records[d.topics["signals"]][:20]:
        verify(orjson.loads(value.value)["set"], jwks)
    for name in ("sessionwarden_events_total", "sessionwarden_commands_total",
                 "sessionwarden_dlq_records_total", "sessionwarden_batch_duration_seconds",
                 "sessionwarden_event_latency_seconds", "sessionwarden_consumer_lag"):
        assert name in metrics
    live = live_view(metrics)  # the dashboard's counters equal replay's summary
    assert live["findings"] == expected.summary["findings_by_detector"]
    assert live["commands"] == expected.summary["commands_by_type"]
    assert live["build_info"] == {expected.summary["policy_version"]}
    assert live["database_ages"] and all(age > 0 for age in live["database_ages"])
    batch_seconds = sum(float(line.split()[-1]) for line in metrics.splitlines()
                        if line.startswith("sessionwarden_batch_duration_seconds_sum"))
    n = len(inputs)
    print(f"\nTHROUGHPUT end-to-end: {n} events, first input -> last output {span:.2f}s = "
          f"{n / span:,.0f} events/s; worker batch time {batch_seconds:.2f}s = "
          f"{n / batch_seconds:,.0f} events/s; outputs {counts}")


async def test_crash_and_restart_loses_no_command_and_recovers_baselines(
        kafka_bootstrap: str, unique_topic_prefix: str, tmp_path: Path) -> None:
    d = Deployment(kafka_bootstrap, unique_topic_prefix)
    app_id = f"{unique_topic_prefix}-app"
    login, change = login_and_asn_change("crash-s1")
    # The session is established first; its ASN change only arrives after the restart.
    part1 = write_lines(tmp_path / "part1.jsonl", [login, *demo_lines(tmp_path)])
    part2 = write_lines(tmp_path / "part2.jsonl", [change])
    whole = write_lines(tmp_path / "whole.jsonl", [*part1.read_bytes().splitlines(), change])
    expected = replay_expected(whole, tmp_path / "replay")
    before = replay_expected(part1, tmp_path / "replay1")
    # Small batches so that the kill lands mid-stream.
    first = WorkerProcess(d, app_id, tmp_path / "state-a", tmp_path / "a.log", batch_size=10)
    first.start()
    changelog = d.changelog(app_id)
    await first.wait_ready()  # topics exist from here on
    async with Collector(kafka_bootstrap, output_topics(d, changelog)) as c:
        await d.produce(part1)
        await c.wait_for(lambda: c.count(d.topics["commands"]) >= len(before.commands) // 10
                         and has_key(c, changelog, b"crash-s1"), what="some progress")
        first.kill()  # SIGKILL: no flush, no commit, no leave-group
        seen_at_kill = c.count(d.topics["commands"])
        assert seen_at_kill < len(before.commands), "the kill must land mid-stream"
        # A fresh local state dir: the baselines can only come from the changelog.
        second = WorkerProcess(d, app_id, tmp_path / "state-b", tmp_path / "b.log")
        second.start()
        try:
            await second.wait_ready()
            await c.wait_for(outputs_complete(c, d, before), what="part 1 after restart")
            await d.produce(part2)
            await c.wait_for(outputs_complete(c, d, expected), what="all outputs")
            await c.settle()
            counts = assert_same_decisions(c, d, expected, redelivered=True)
        finally:
            assert second.terminate() == 0, second.tail()
    revoked = revokes(c, d, "crash-s1")
    assert revoked and all(r["cause_event_id"] == "crash-s1-change" for r in revoked)
    print(f"\nCRASH killed after {seen_at_kill}/{len(before.commands)} commands; {counts}")


async def test_crash_after_outputs_before_state_resends_identical_commands(
        kafka_bootstrap: str, unique_topic_prefix: str, tmp_path: Path) -> None:
    """The worst moment: outputs delivered, baselines not stored, offsets not committed."""
    d = Deployment(kafka_bootstrap, unique_topic_prefix)
    app_id = f"{unique_topic_prefix}-app"
    source = write_lines(tmp_path / "events.jsonl", demo_lines(tmp_path))
    expected = replay_expected(source, tmp_path / "replay")
    crashing = WorkerProcess(d, app_id, tmp_path / "state-a", tmp_path / "a.log",
                             module="tests.integration.crashing_worker",
                             extra_env={"CRASH_AFTER_BATCHES": "4"}, batch_size=50)
    crashing.start()
    await crashing.wait_ready()
    async with Collector(kafka_bootstrap, output_topics(d)) as c:
        await d.produce(source)
        assert crashing.proc is not None
        assert await asyncio.to_thread(crashing.proc.wait, 60) == 137, crashing.tail()
        seen_at_crash = c.count(d.topics["commands"])
        second = WorkerProcess(d, app_id, tmp_path / "state-b", tmp_path / "b.log").start()
        try:
            await second.wait_ready()
            await c.wait_for(outputs_complete(c, d, expected), what="all outputs")
            await c.settle()
            counts = assert_same_decisions(c, d, expected, redelivered=True)
        finally:
            assert second.terminate() == 0, second.tail()
    # The crashed batch's commands were delivered, its state was not: they come again,
    # identical (assert_same_decisions checked content), and none is missing.
    assert counts["duplicates"] > 0
    print(f"\nCRASH after outputs of batch 4 ({seen_at_crash} commands out): {counts}")


async def test_two_workers_share_partitions_and_hand_over_state(
        kafka_bootstrap: str, unique_topic_prefix: str, tmp_path: Path) -> None:
    d = Deployment(kafka_bootstrap, unique_topic_prefix, partitions=4)
    app_id = f"{unique_topic_prefix}-app"
    a = WorkerProcess(d, app_id, tmp_path / "state-a", tmp_path / "a.log").start()
    b = WorkerProcess(d, app_id, tmp_path / "state-b", tmp_path / "b.log").start()
    try:
        await a.wait_ready()
        await b.wait_ready(partitions=bool)
        await a.wait_ready(partitions=lambda ps: bool(ps) and not ps & b.input_partitions())
        owned_by_b = b.input_partitions()
        assert owned_by_b and a.input_partitions() | owned_by_b == {0, 1, 2, 3}
        # A session that lives on one of b's partitions.
        session = next(s for s in (f"handover-{i}" for i in range(1000))
                       if DefaultPartitioner()(s.encode(), [0, 1, 2, 3], [0, 1, 2, 3])
                       in owned_by_b)
        login, change = login_and_asn_change(session)
        part1 = write_lines(tmp_path / "part1.jsonl", [*demo_lines(tmp_path), login])
        whole = write_lines(tmp_path / "whole.jsonl", [*part1.read_bytes().splitlines(), change])
        before = replay_expected(part1, tmp_path / "replay1")
        expected = replay_expected(whole, tmp_path / "replay")
        async with Collector(kafka_bootstrap, output_topics(d, d.changelog(app_id))) as c:
            await d.produce(part1)
            await c.wait_for(outputs_complete(c, d, before), what="part 1")
            await c.wait_for(lambda: has_key(c, d.changelog(app_id), session.encode()),
                             what="the session's baseline in the changelog")
            await c.settle()
            assert_same_decisions(c, d, before)
            for w in (a, b):
                processed = [line for line in w.metrics().splitlines()
                             if line.startswith('sessionwarden_events_total{outcome="processed"}')]
                assert processed and float(processed[0].split()[-1]) > 0, "both must work"
            assert b.terminate() == 0, b.tail()  # graceful: finish, commit, leave the group
            started = time.monotonic()
            await a.wait_ready(partitions=lambda ps: ps == {0, 1, 2, 3})
            handover = time.monotonic() - started
            await d.produce(write_lines(tmp_path / "part2.jsonl", [change]))
            await c.wait_for(outputs_complete(c, d, expected), what="all outputs")
            await c.settle()
            assert_same_decisions(c, d, expected)
        assert revokes(c, d, session), "the handed-over baseline must revoke the ASN change"
        print(f"\nHANDOVER to the remaining worker took {handover:.1f}s")
    finally:
        for w in (a, b):
            w.terminate()


async def test_poison_messages_go_to_the_dlq_and_do_not_stall_the_partition(
        kafka_bootstrap: str, unique_topic_prefix: str, tmp_path: Path) -> None:
    d = Deployment(kafka_bootstrap, unique_topic_prefix, partitions=2)
    settings = Settings(broker=kafka_bootstrap, input_topic=d.topics["input"],
                        commands_topic=d.topics["commands"], audit_topic=d.topics["audit"],
                        alerts_topic=d.topics["alerts"], dlq_topic=d.topics["dlq"],
                        signals_topic=d.topics["signals"],
                        signals_dlq_topic=d.topics["signals_dlq"],
                        topic_partitions=d.partitions)
    await prepare_topics(settings)  # the worker would do it too; the producer needs them now
    worker = WorkerProcess(d, f"{unique_topic_prefix}-app", tmp_path / "state",
                           tmp_path / "worker.log").start()
    big = os.urandom(1024 * 1024)
    poison = [b"not json {", b'{"event_id": 1, "shape": "wrong"}', big]
    login, _change = login_and_asn_change("p-1")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, max_request_size=4 << 20)
    try:
        await worker.wait_ready()
        async with Collector(kafka_bootstrap, output_topics(d)) as c:
            await producer.start()
            offsets = [(await producer.send_and_wait(d.topics["input"], value, key=b"p-1"))
                       for value in [*poison, login]]
            await c.wait_for(lambda: c.count(d.topics["dlq"]) >= 3
                             and c.count(d.topics["commands"]) >= 1, what="DLQ and command")
            await c.settle()
    finally:
        await producer.stop()
        assert worker.terminate() == 0, worker.tail()
    dlq = sorted(c.records[d.topics["dlq"]], key=lambda r: r.offset)
    assert [r.value for r in dlq] == poison  # the original bytes, the 1 MB one included
    for r, meta in zip(dlq, offsets, strict=False):
        assert r.key == b"p-1"
        assert r.headers["sessionwarden.error"]
        assert r.headers["sessionwarden.origin.topic"] == d.topics["input"].encode()
        assert r.headers["sessionwarden.origin.partition"] == str(meta.partition).encode()
        assert r.headers["sessionwarden.origin.offset"] == str(meta.offset).encode()
    assert dlq[0].headers["sessionwarden.error_class"].startswith(b"not JSON")
    (command,) = [orjson.loads(r.value) for r in c.records[d.topics["commands"]]]
    assert command["cause_event_id"] == "p-1-login"  # processed after the poison
