"""One test per Faust internal touched by `worker.kafka.faust_compat`.

Why: these are not public Faust API. Each test runs the touch point against
real Faust objects (an app that is built but never started, so no broker is
needed), so a faust-streaming upgrade that moves one fails here, by name,
instead of silently dropping or re-deciding events in production.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import faust
import pytest
from faust.types import TP, ConsumerMessage

from worker.kafka.faust_compat import (
    BaselineTable,
    EventOf,
    ack_messages,
    commit_now,
    current_event,
    hold_input_partitions,
    input_partitions,
    install_bulk_drain,
    live_messages,
    mark_stream_progress,
    partition_store,
    record_changelog_offset,
    set_fetch_max_wait,
    track_messages,
)


def _app(tmp_path: Path, store: str = "memory://") -> faust.App:
    return faust.App("compat-test", broker="kafka://127.0.0.1:1", store=store,
                     datadir=str(tmp_path), autodiscover=False, web_enabled=False)


def _table(app: faust.App) -> BaselineTable:
    table = BaselineTable(app, name="baselines", default=None, partitions=2,
                          key_type=bytes, value_type=bytes)
    app.tables.add(table)
    return table


class _Event:
    """Stands for a faust Event: what `current_event()` hands back."""

    def __init__(self, partition: int) -> None:
        self.message = type("M", (), {"partition": partition, "topic": "in"})()


async def test_current_event_is_what_faust_reports() -> None:
    event = _Event(1)
    assert faust.current_event() is None
    with current_event(event):
        assert faust.current_event() is event
    assert faust.current_event() is None


async def test_changelog_partitions_are_told_apart_from_inputs(tmp_path: Path) -> None:
    app = _app(tmp_path)
    table = _table(app)
    changelog = TP(table.changelog_topic.get_topic_name(), 0)
    consumer: Any = app.consumer
    assert input_partitions(consumer, {TP("in", 0), changelog}) == {TP("in", 0)}


async def test_held_input_partitions_are_not_resumed_nor_buffered(tmp_path: Path) -> None:
    app = _app(tmp_path)
    table = _table(app)
    consumer: Any = app.consumer
    changelog = TP(table.changelog_topic.get_topic_name(), 0)
    resumed: list[set[TP]] = []
    consumer.resume_partitions = lambda tps: resumed.append(set(tps))
    consumer._buffered_partitions.update({TP("in", 0), changelog})
    holding = True
    hold_input_partitions(consumer, lambda: holding)
    consumer.resume_partitions({TP("in", 0), changelog})
    assert resumed[-1] == {changelog}
    assert TP("in", 0) not in consumer._buffered_partitions
    holding = False
    consumer.resume_partitions({TP("in", 0)})
    assert resumed[-1] == {TP("in", 0)}


async def test_held_input_partitions_are_left_out_of_fetches(tmp_path: Path) -> None:
    """A first assignment makes inputs active before recovery: they must not be fetched."""
    app = _app(tmp_path)
    table = _table(app)
    consumer: Any = app.consumer
    changelog = TP(table.changelog_topic.get_topic_name(), 0)
    asked: list[set[TP] | None] = []

    async def fetch(active_partitions: Any, timeout: float) -> dict[TP, list[Any]]:
        asked.append(None if active_partitions is None else set(active_partitions))
        return {}

    consumer._getmany = fetch
    holding = True
    hold_input_partitions(consumer, lambda: holding)
    await consumer._getmany({TP("in", 0), changelog}, 1.0)
    holding = False
    await consumer._getmany({TP("in", 0), changelog}, 1.0)
    assert asked == [{changelog}, {TP("in", 0), changelog}]


async def test_recorded_changelog_offset_is_where_recovery_resumes(tmp_path: Path) -> None:
    app = _app(tmp_path, store="rocksdb://")
    table = _table(app)
    tp = TP(table.changelog_topic.get_topic_name(), 1)
    record_changelog_offset(table, tp.topic, tp.partition, 41)
    assert table.data.persisted_offset(tp) == 41


async def test_commit_now_waits_for_a_running_commit_then_commits(tmp_path: Path) -> None:
    app = _app(tmp_path)
    consumer: Any = app.consumer
    assert callable(consumer.maybe_wait_for_commit_to_finish)
    calls: list[str] = []
    running = [True, False]

    async def wait() -> bool:
        calls.append("wait")
        return running.pop(0)

    async def commit() -> bool:
        calls.append("commit")
        return True

    consumer.maybe_wait_for_commit_to_finish = wait
    consumer.commit = commit
    await commit_now(consumer)
    assert calls == ["wait", "wait", "commit"]


async def test_table_write_needs_a_current_event_and_skips_faust_changelog(
        tmp_path: Path) -> None:
    app = _app(tmp_path)
    table = _table(app)
    sent: list[Any] = []
    table.changelog_topic.send_soon = lambda *a, **k: sent.append((a, k))  # type: ignore[method-assign]
    with pytest.raises(TypeError, match="outside of stream iteration"):
        table[b"s-1"] = b"x"  # no current event: Faust cannot pick a partition
    with current_event(_Event(1)):
        table[b"s-1"] = b"x"
        assert table.get(b"s-1") == b"x"
    assert sent == [], "the batch publishes changelog records itself"



def _message(topic: str, partition: int, offset: int, generation: int = 0) -> ConsumerMessage:
    return ConsumerMessage(topic, partition, offset, 0.0, 0, None, b"k", b"v", None,
                           tp=TP(topic, partition), generation_id=generation)


class _Fetcher:
    """Stands for Faust's Fetcher service: the drain loop runs until it is stopped."""

    def __init__(self) -> None:
        self._stopped = asyncio.Event()


async def _drain(tmp_path: Path, flow_on: bool) -> dict[str, Any]:
    """Run the bulk drain over two fetches; report deliveries, callbacks, races, offsets."""
    app = _app(tmp_path)
    changelog = _table(app).changelog_topic.get_topic_name()
    consumer: Any = app.consumer
    fetcher = _Fetcher()
    fetches = [
        [_message("in", 0, 5), _message(changelog, 0, 1), _message("in", 1, 7),
         _message("in", 0, 6)],
        [_message("in", 0, 5), _message("in", 0, 7)],  # 5 again: below the read offset
    ]

    async def getmany(timeout: float) -> Any:
        for message in fetches.pop(0) if fetches else []:
            yield message.tp, message

    out: dict[str, Any] = {"delivered": [], "called": [], "raced": 0}

    async def callback(message: Any) -> None:
        out["called"].append(message.offset)

    async def deliver(batch: list[Any]) -> None:
        out["delivered"].append([(m.topic, m.partition, m.offset) for m in batch])
        if not fetches:
            fetcher._stopped.set()

    wait_first = consumer.wait_first

    async def counting_wait_first(*aws: Any) -> Any:
        out["raced"] += 1
        return await wait_first(*aws)

    consumer.getmany = getmany
    consumer.callback = callback
    consumer.wait_first = counting_wait_first
    if flow_on:
        app.flow_control.resume()
    install_bulk_drain(consumer, ["in"], deliver)
    await asyncio.wait_for(consumer._drain_messages(fetcher), 10)
    out["read"] = {tp.topic if tp.topic == "in" else "changelog": offset
                   for tp, offset in consumer._read_offset.items() if tp.partition == 0}
    return out


async def test_bulk_drain_hands_whole_fetches_over_and_keeps_faust_for_the_rest(
        tmp_path: Path) -> None:
    """Input records: one deliver() per fetch; changelog records: Faust's callback,
    without the wait_first race when it cannot block; offsets below the read offset:
    dropped, as Faust drops them."""
    out = await _drain(tmp_path, flow_on=True)
    assert out["delivered"] == [[("in", 0, 5), ("in", 1, 7), ("in", 0, 6)], [("in", 0, 7)]]
    assert out["called"] == [1]
    assert out["raced"] == 0
    assert out["read"] == {"in": 7, "changelog": 1}


async def test_bulk_drain_races_a_changelog_delivery_that_may_block(tmp_path: Path) -> None:
    """Flow control suspended (a rebalance): Faust's wait_first race, as upstream."""
    out = await _drain(tmp_path, flow_on=False)
    assert out["raced"] == 1
    assert out["delivered"][0] == [("in", 0, 5), ("in", 1, 7), ("in", 0, 6)]


async def test_live_messages_drop_a_revoked_generation_and_suspended_flow(
        tmp_path: Path) -> None:
    app: Any = _app(tmp_path)
    app.consumer_generation_id = 3
    app.flow_control.resume()
    old, new = _message("in", 0, 1, generation=2), _message("in", 0, 2, generation=3)
    assert live_messages(app, [old, new]) == [new]
    assert live_messages(app, [new]) == [new]
    app.flow_control.suspend()
    assert live_messages(app, [new]) == []


async def test_tracked_messages_are_in_flight_until_acked_then_committable(
        tmp_path: Path) -> None:
    app: Any = _app(tmp_path)
    consumer: Any = app.consumer
    app.topics._acking_topics.add("in")  # the agent's topic acks (set at subscription)
    messages = [_message("in", 0, n) for n in (0, 1, 2)]
    track_messages(consumer, messages)
    assert set(consumer.unacked) == set(messages)
    assert all(m.tracked for m in messages)
    ack_messages(consumer, messages)
    assert not consumer.unacked
    assert all(m.acked for m in messages)
    assert consumer._new_offset(TP("in", 0)) == 3  # what the next commit commits


async def test_stream_progress_is_what_the_livelock_detector_reads(tmp_path: Path) -> None:
    app: Any = _app(tmp_path)
    mark_stream_progress(app, [TP("in", 2)])
    assert TP("in", 2) in app.monitor.stream_inbound_time


async def test_a_message_stand_in_is_enough_for_a_table_write(tmp_path: Path) -> None:
    app = _app(tmp_path)
    table = _table(app)
    table.changelog_topic.send_soon = lambda *a, **k: None  # type: ignore[method-assign]
    message = _message("in", 1, 0)
    with current_event(EventOf(message)):
        assert faust.current_event().message is message  # type: ignore[union-attr]
        table[b"s-2"] = b"y"
        assert table.get(b"s-2") == b"y"


async def test_the_fetch_wait_faust_hard_codes_is_replaced(tmp_path: Path) -> None:
    """Faust's worker consumer waits 1,500 ms for a fetch; the worker's waits what it sets."""
    app = _app(tmp_path)
    consumer: Any = app.consumer
    transport = consumer.transport
    faust_client = consumer._thread._create_worker_consumer(transport)
    assert faust_client._fetch_max_wait_ms == 1500  # what the fix is for
    set_fetch_max_wait(consumer, 20)
    client = consumer._thread._create_worker_consumer(transport)
    assert client._fetch_max_wait_ms == 20
    assert client is not faust_client
    for c in (faust_client, client):
        await c.stop()


async def test_partition_store_reads_and_writes_what_the_table_does(tmp_path: Path) -> None:
    """Direct partition-database access sees the table's writes and the table sees its own."""
    app = _app(tmp_path, store="rocksdb://")
    table = _table(app)
    direct = partition_store(table)
    assert direct is not None
    with current_event(_Event(1)):
        table["s-table"] = b"\x02via-table"
    assert direct.get(1, b"s-table") == b"\x02via-table"
    assert direct.get(0, b"s-table") is None  # the source event's partition only
    direct.put(1, "s-é".encode(), b"\x02direct")
    with current_event(_Event(1)):
        assert table.get("s-é") == b"\x02direct"  # str keys are stored as UTF-8
    assert partition_store(_table(_app(tmp_path / "m"))) is None  # memory:// keeps the table
