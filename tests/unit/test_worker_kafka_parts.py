"""Broker-free tests of the Kafka plumbing: addresses, security, keys, batching, logs.

Why: these decide where records land (partition = session) and whether a
secured cluster is reachable at all; mistakes here only show up in production.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import orjson
import pytest
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder

from worker.kafka.client import (
    aiokafka_security,
    bootstrap_servers,
    faust_broker_url,
    faust_credentials,
    topic_plan,
)
from worker.kafka.metrics import Metrics
from worker.kafka.produce import keyed_records
from worker.kafka.sender import BatchSender
from worker.logs import JsonFormatter, logging_config
from worker.pipeline import Stats
from worker.settings import Settings

UA = "Mozilla/5.0 (X11; Linux x86_64) Firefox/119.0"


def ev(event_id: str, session: str) -> dict[str, Any]:
    return {"event_id": event_id, "type": "login", "occurred_at": "2026-11-01T00:00:00.000Z",
            "session": {"id": session}, "request": {"ip": "81.2.69.142", "user_agent": UA}}


@pytest.mark.parametrize(("broker", "expected"), [
    ("kafka://localhost:9092", "localhost:9092"),
    ("kafka://a:1;kafka://b:2", "a:1,b:2"),
    ("kafka://a:1;b:2/", "a:1,b:2"),
    ("a:1, b:2", "a:1,b:2"),
])
def test_broker_addresses_in_both_spellings(broker: str, expected: str) -> None:
    assert bootstrap_servers(broker) == expected
    assert faust_broker_url(broker) == ";".join(f"kafka://{h}" for h in expected.split(","))


def test_empty_broker_is_an_error() -> None:
    with pytest.raises(ValueError, match="no broker"):
        bootstrap_servers(" ; ")


def test_security_settings_map_to_aiokafka_and_faust() -> None:
    assert aiokafka_security(Settings()) == {"security_protocol": "PLAINTEXT"}
    assert faust_credentials(Settings()) is None
    sasl = Settings(security_protocol="sasl_plaintext", sasl_mechanism="SCRAM-SHA-512",
                    sasl_username="u", sasl_password="p")
    assert aiokafka_security(sasl) == {
        "security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "SCRAM-SHA-512",
        "sasl_plain_username": "u", "sasl_plain_password": "p"}
    creds = faust_credentials(sasl)
    assert isinstance(creds, faust.SASLCredentials)
    assert creds.username == "u" and creds.mechanism.value == "SCRAM-SHA-512"
    ssl = Settings(security_protocol="SSL")
    assert aiokafka_security(ssl)["ssl_context"] is not None
    assert isinstance(faust_credentials(ssl), faust.SSLCredentials)
    with pytest.raises(ValueError, match="needs SESSIONWARDEN_SASL_USERNAME"):
        aiokafka_security(Settings(security_protocol="SASL_SSL"))
    with pytest.raises(ValueError, match="security_protocol"):
        aiokafka_security(Settings(security_protocol="TLS"))


def test_topic_plan_copartitions_everything_and_sizes_input_and_dlq() -> None:
    s = Settings(max_message_bytes=5_000_000)
    plan = topic_plan(s, partitions=6)
    assert set(plan.partitions.values()) == {6}
    assert set(plan.partitions) == {"session-events", "session-commands", "session-audit",
                                    "session-alerts", "session-events-dlq", "session-signals",
                                    "session-signals-dlq"}
    out = {"max.message.bytes": str(s.max_output_bytes)}
    assert plan.configs == {"session-events": {"max.message.bytes": "5000000"},
                            "session-events-dlq": {"max.message.bytes": "5000000"},
                            "session-commands": out, "session-audit": out, "session-alerts": out,
                            "session-signals": out, "session-signals-dlq": out}


def test_produce_keys_by_normalized_session_and_keeps_the_original_bytes() -> None:
    line = orjson.dumps(ev("e1", "s-1")) + b"\n"
    assert keyed_records(line) == [(b"s-1", line[:-1])]
    assert keyed_records(b"not json\r\n") == [(None, b"not json")]
    assert keyed_records(b"") == [(None, b"")]
    one_session = orjson.dumps([ev("e1", "s-1"), ev("e2", "s-1"), {"bad": 1}])
    assert keyed_records(one_session) == [(b"s-1", one_session)]


def test_produce_splits_array_lines_holding_several_sessions() -> None:
    items = [ev("e1", "s-1"), ev("e2", "s-2"), {"bad": 1}]
    assert keyed_records(orjson.dumps(items)) == [
        (b"s-1", orjson.dumps(items[0])), (b"s-2", orjson.dumps(items[1])),
        (None, orjson.dumps(items[2]))]


class FakeProducer:
    """Records send_batch calls; batches are real aiokafka BatchBuilders."""

    def __init__(self, batch_size: int = 16384) -> None:
        self.batch_size = batch_size
        self.sent: list[tuple[str, int, int]] = []

    async def partitions_for(self, topic: str) -> set[int]:
        return {0, 1, 2, 3}

    def create_batch(self) -> BatchBuilder:
        return BatchBuilder(self.batch_size, 0)

    async def send_batch(self, batch: BatchBuilder, topic: str, *,
                         partition: int) -> asyncio.Future[Any]:
        base = sum(n for t, p, n in self.sent if (t, p) == (topic, partition))
        self.sent.append((topic, partition, batch.record_count()))
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        fut.set_result(SimpleNamespace(offset=base))  # like aiokafka: the batch's base offset
        return fut


async def test_sender_partitions_like_kafka_and_keeps_per_partition_order() -> None:
    producer = FakeProducer(batch_size=300)
    sender = BatchSender(producer)
    await sender.prepare(["t"])
    expected = DefaultPartitioner()(b"s-1", [0, 1, 2, 3], [0, 1, 2, 3])
    assert sender.partition_for("t", b"s-1") == expected
    assert {sender.partition_for("t", None) for _ in range(4)} == {0, 1, 2, 3}
    for _ in range(10):
        sender.add("t", b"s-1", b"x" * 100)
    sender.add("t", b"s-1", b"y" * 2000)  # larger than a batch: gets a batch of its own
    sender.add("t", None, b"z", partition=expected ^ 1)  # an explicit partition wins
    assert sender.pending == 12
    delivered = await sender.flush()
    assert sender.pending == 0
    assert {p for _t, p, _n in producer.sent} == {expected, expected ^ 1}
    assert sum(n for *_, n in producer.sent) == 12 and len(producer.sent) > 2
    # (topic, partition, last offset) per batch; the last batch of s-1 ends at offset 10.
    assert max(off for _t, p, off in delivered if p == expected) == 10
    assert await sender.flush() == []


def test_json_log_lines_carry_extras_and_exceptions() -> None:
    fmt = JsonFormatter()
    record = logging.LogRecord("sessionwarden.x", logging.INFO, __file__, 1, "hello %s",
                               ("world",), None)
    record.topics = ["a"]
    record.obj = object()
    line = orjson.loads(fmt.format(record))
    assert line["msg"] == "hello world" and line["level"] == "INFO"
    assert line["topics"] == ["a"] and line["obj"].startswith("<object")
    try:
        raise ValueError("bad")
    except ValueError:
        import sys  # noqa: PLC0415

        record.exc_info = sys.exc_info()
    assert "ValueError: bad" in orjson.loads(fmt.format(record))["exc"]
    assert logging_config("INFO", "text")["handlers"]["default"]["formatter"] == "text"
    assert logging_config("debug", "json")["root"]["level"] == "DEBUG"


def test_repeated_errors_are_rate_limited_with_a_count() -> None:
    """A broker outage once wrote 17,814 identical ERROR lines in 13 s (issue 8)."""
    from worker.logs import RepeatFilter  # noqa: PLC0415

    f = RepeatFilter(window=10.0)

    def record(at: float, msg: str = "Unable connect to %r: %r") -> logging.LogRecord:
        r = logging.LogRecord("aiokafka", logging.ERROR, __file__, 1, msg, ("node", "x"), None)
        r.created = at
        return r

    passed = [r for r in (record(1000 + i * 0.0005) for i in range(17_814)) if f.filter(r)]
    assert len(passed) == 1
    later = record(1011.0)
    assert f.filter(later) and later.repeated == 17_813  # type: ignore[attr-defined]
    assert f.filter(record(1011.5, "another message")), "other messages are not held back"
    info = logging.LogRecord("x", logging.INFO, __file__, 1, "m", (), None)
    assert all(f.filter(info) for _ in range(3)), "only warnings and errors are limited"


def test_metrics_follow_pipeline_stats_by_deltas() -> None:
    m = Metrics()
    stats = Stats(events_processed=10, duplicates=2, events_skipped=1, dead_letters=3)
    stats.commands_by_type["revoke_session"] = 4
    m.observe_stats(stats)
    stats.events_processed += 5
    stats.commands_by_type["revoke_session"] += 1
    m.observe_stats(stats)
    m.set_lag("in", 0, 7)
    m.forget_partitions([("in", 0), ("in", 9)])
    text = m.render().decode()
    assert 'sessionwarden_events_total{outcome="processed"} 13.0' in text
    assert 'sessionwarden_events_total{outcome="duplicate"} 2.0' in text
    assert 'sessionwarden_commands_total{type="revoke_session"} 5.0' in text
    assert "sessionwarden_consumer_lag{" not in text


def test_produce_routes_a_users_sessions_together_and_keeps_sessions_whole() -> None:
    """Keyed by tenant + user, so the user's profile and every session of theirs meet."""
    from worker.routing import RouteMemory  # noqa: PLC0415

    memory = RouteMemory()
    a = orjson.dumps({**ev("e1", "s-1"), "user": {"id": "u1"}})
    b = orjson.dumps({**ev("e2", "s-2"), "user": {"id": "u1"}})
    c = orjson.dumps(ev("e3", "s-1"))  # no user id: follows its session's user
    d = orjson.dumps(ev("e4", "s-9"))  # never seen with a user: its own session id
    keys = [keyed_records(x, memory=memory)[0][0] for x in (a, b, c, d)]
    assert keys == [b"\x1fu1", b"\x1fu1", b"\x1fu1", b"s-9"]  # no tenant in these records


def test_the_baseline_table_has_rocksdb_sized_for_it(tmp_path: Path) -> None:
    """Not Faust's 3 x 64 MiB write buffers and 2 GiB block cache per partition DB."""
    from worker.kafka.app import ROCKSDB_OPTIONS, TABLE_NAME, create_app  # noqa: PLC0415

    settings = Settings(data_dir=tmp_path / "state", store="rocksdb://")
    app = create_app(settings)
    options = app.tables[TABLE_NAME].data.rocksdb_options  # type: ignore[attr-defined]
    assert options.write_buffer_size == ROCKSDB_OPTIONS["write_buffer_size"] == 8 << 20
    assert options.max_write_buffer_number == 2
    assert options.block_cache_size == 64 << 20


async def test_no_leader_topic_and_the_configured_fetch_wait(tmp_path: Path) -> None:
    """The app has no idle leader-election partition, and its consumer waits what it is told."""
    from worker.kafka.app import create_app  # noqa: PLC0415

    default = create_app(Settings(data_dir=tmp_path / "a"))
    assert default.conf.topic_disable_leader is True
    assert default.fetch_max_wait_ms == 100  # type: ignore[attr-defined]
    app = create_app(Settings(data_dir=tmp_path / "b", fetch_max_wait=0.25))
    assert app.fetch_max_wait_ms == 250  # type: ignore[attr-defined]
    consumer: Any = app.consumer  # built with the wait (tests/unit/test_faust_compat.py)
    client = consumer._thread._create_worker_consumer(consumer.transport)
    assert client._fetch_max_wait_ms == 250
    await client.stop()
