"""One test per Faust internal touched by `worker.kafka.faust_compat`.

Why: these are not public Faust API. Each test runs the touch point against
real Faust objects (an app that is built but never started, so no broker is
needed), so a faust-streaming upgrade that moves one fails here, by name,
instead of silently dropping or re-deciding events in production.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import faust
import pytest
from faust.types import TP

from worker.kafka.faust_compat import (
    BaselineTable,
    commit_now,
    current_event,
    hold_input_partitions,
    input_partitions,
    record_changelog_offset,
    seek_uncommitted_inputs_to_beginning,
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



async def test_uncommitted_input_partitions_restart_at_their_beginning(tmp_path: Path) -> None:
    """Faust's own seek leaves a partition without a committed offset where it is."""
    from aiokafka import TopicPartition  # noqa: PLC0415

    app = _app(tmp_path)
    consumer: Any = app.consumer
    committed, fresh = TP("in", 0), TP("in", 1)

    async def seek_to_committed() -> dict[TP, int | None]:  # what the broker answers
        return {committed: 7, fresh: None}

    sought: list[tuple[TopicPartition, ...]] = []

    async def seek_to_beginning(*tps: TopicPartition) -> None:
        sought.append(tps)

    assert callable(consumer._thread.seek_to_beginning)
    consumer.seek_to_committed = seek_to_committed
    consumer._thread.seek_to_beginning = seek_to_beginning
    await consumer.perform_seek()  # Faust's own: records what is committed
    assert consumer._read_offset[committed] == 7 and consumer._read_offset[fresh] is None
    assert await seek_uncommitted_inputs_to_beginning(consumer, {committed, fresh}) == [fresh]
    assert sought == [(TopicPartition("in", 1),)]  # not the committed one
