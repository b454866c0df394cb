"""Integration tests against the real local Kafka broker (scripts/kafka_local.py).

Why: they prove the broker the project starts itself supports what the worker
needs from aiokafka/Faust -- keyed partitioning with per-key order, consumer
groups, transactions with read_committed isolation, and Faust tables.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from pathlib import Path

import faust
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from tests.kafka_plugin import create_topics

pytestmark = [pytest.mark.kafka, pytest.mark.asyncio]

N_MESSAGES = 1000
N_KEYS = 25


async def _consume(
    consumer: AIOKafkaConsumer, want: int, timeout: float = 30.0
) -> list[tuple[int, str, str]]:
    """Read until ``want`` records arrive; returns (partition, key, value)."""
    out: list[tuple[int, str, str]] = []
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while len(out) < want and loop.time() < deadline:
        batches = await consumer.getmany(timeout_ms=500)
        for tp, records in batches.items():
            out.extend(
                (tp.partition, (r.key or b"").decode(), (r.value or b"").decode()) for r in records
            )
    return out


async def test_keyed_produce_consume_in_group(
    kafka_bootstrap: str, unique_topic_prefix: str
) -> None:
    topic = f"{unique_topic_prefix}-keyed"
    await create_topics(kafka_bootstrap, {topic: 4})

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        sends = [
            await producer.send(topic, key=f"k{i % N_KEYS}".encode(), value=f"{i}".encode())
            for i in range(N_MESSAGES)
        ]
        await producer.flush()
        metas = await asyncio.gather(*sends)
    finally:
        await producer.stop()
    assert {m.partition for m in metas} == {0, 1, 2, 3}

    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"{unique_topic_prefix}-group",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=500,
    )
    await consumer.start()
    try:
        records = await _consume(consumer, N_MESSAGES)
        await consumer.commit()
        partitions = [TopicPartition(topic, p) for p in range(4)]
        committed = [await consumer.committed(tp) for tp in partitions]
    finally:
        await consumer.stop()

    assert len(records) == N_MESSAGES
    per_key: dict[str, list[int]] = defaultdict(list)
    key_partitions: dict[str, set[int]] = defaultdict(set)
    for partition, key, value in records:
        per_key[key].append(int(value))
        key_partitions[key].add(partition)
    assert len(per_key) == N_KEYS
    for key, values in per_key.items():
        assert values == sorted(values), f"order broken for {key}"
        assert len(values) == N_MESSAGES // N_KEYS
        assert len(key_partitions[key]) == 1
    assert sum(c or 0 for c in committed) == N_MESSAGES


async def test_transactions_read_committed(kafka_bootstrap: str, unique_topic_prefix: str) -> None:
    topic = f"{unique_topic_prefix}-tx"
    await create_topics(kafka_bootstrap, {topic: 2})

    producer = AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap, transactional_id=f"{unique_topic_prefix}-txid"
    )
    await producer.start()
    try:
        async with producer.transaction():
            for i in range(5):
                await producer.send(topic, key=b"a", value=f"committed-{i}".encode())
        await producer.begin_transaction()
        for i in range(5):
            await producer.send(topic, key=b"a", value=f"aborted-{i}".encode())
        await producer.abort_transaction()
        async with producer.transaction():
            for i in range(5, 10):
                await producer.send(topic, key=b"a", value=f"committed-{i}".encode())
    finally:
        await producer.stop()

    async def read(isolation: str, want: int) -> list[str]:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=kafka_bootstrap,
            group_id=None,
            auto_offset_reset="earliest",
            isolation_level=isolation,
        )
        await consumer.start()
        try:
            return [value for _, _, value in await _consume(consumer, want, timeout=20)]
        finally:
            await consumer.stop()

    committed = await read("read_committed", 10)
    # The last committed batch lies after the aborted one, so reading it means
    # the consumer has passed (and filtered) the aborted records.
    assert committed == [f"committed-{i}" for i in range(10)]
    uncommitted = await read("read_uncommitted", 15)
    assert sum(v.startswith("aborted-") for v in uncommitted) == 5


async def test_faust_table_smoke(
    kafka_bootstrap: str, unique_topic_prefix: str, tmp_path: Path
) -> None:
    """A tiny Faust app with a changelogged Table processes a few events."""
    source = f"{unique_topic_prefix}-events"
    await create_topics(kafka_bootstrap, {source: 1})
    app = faust.App(
        f"{unique_topic_prefix}-app",
        broker=f"kafka://{kafka_bootstrap}",
        store="memory://",
        datadir=str(tmp_path),
        web_enabled=False,
        autodiscover=False,
        topic_partitions=1,
        topic_replication_factor=1,
        broker_session_timeout=2,
        broker_heartbeat_interval=0.5,
        consumer_auto_offset_reset="earliest",
    )
    events = app.topic(source, key_type=str, value_type=str)
    counts = app.Table("counts", default=int, partitions=1)
    done = asyncio.Event()
    want = 6

    @app.agent(events)
    async def count(stream: faust.StreamT[str]) -> None:
        seen = 0
        async for key, _value in stream.items():  # noqa: PERF102 - Faust stream API
            counts[key] += 1
            seen += 1
            if seen >= want:
                done.set()

    # Bounded everywhere: a Faust app that cannot join its group (e.g. broker
    # group.min.session.timeout.ms above broker_session_timeout) would
    # otherwise retry forever instead of failing the test.
    try:
        await asyncio.wait_for(app.start(), timeout=30)
        for i in range(want):
            await events.send(key=f"user-{i % 2}", value="login")
        await asyncio.wait_for(done.wait(), timeout=30)
        assert counts["user-0"] == 3
        assert counts["user-1"] == 3
    finally:
        await asyncio.wait_for(app.stop(), timeout=30)

    changelog = f"{unique_topic_prefix}-app-counts-changelog"
    consumer = AIOKafkaConsumer(
        changelog, bootstrap_servers=kafka_bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        records = await _consume(consumer, want, timeout=20)
    finally:
        await consumer.stop()
    assert len(records) == want  # one changelog entry per table update
