"""Every Faust (faust-streaming) internal that sessionwarden touches, in one place.

Why this module exists: the worker relies on a few Faust behaviours that are
not public API (the current-event context variable, the consumer's pause
bookkeeping, the table's persisted-offset record, the commit lock). A Faust
upgrade can move any of them. Keeping them here, each behind a small function
with its own test in `tests/unit/test_faust_compat.py`, makes such an upgrade
fail loudly in one place instead of silently losing events.

Touch points (what, where in Faust 0.11-0.15, why):

1. `faust.streams._current_event`, the context variable behind
   `faust.current_event()`: a table write picks its store partition from the
   current event, so the batch sets it per record (`current_event`).
2. `Consumer._is_changelog_tp` and `Consumer._buffered_partitions`: input
   partitions are held paused until recovery ends (`hold_input_partitions`,
   the seek race described in docs/worker.md).
3. `Table.data.set_persisted_offset`: recovery starts after the last
   changelog offset we wrote ourselves (`record_changelog_offset`).
4. `Consumer.maybe_wait_for_commit_to_finish` + `Consumer.commit`: commit the
   batch's acks now (`commit_now`).
5. `Table._sensor_on_set` and `Table.partition_for_key`: our table publishes
   its own changelog records, so `on_key_set` only keeps Faust's sensor
   (`BaselineTable`).
6. `Consumer.perform_seek`, `Consumer._read_offset` and the consumer
   thread's `seek_to_beginning`: an input partition without a committed
   offset restarts at its beginning after recovery
   (`seek_uncommitted_inputs_to_beginning`, see its docstring).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import faust
from aiokafka import TopicPartition
from faust.streams import _current_event
from faust.types import TP

__all__ = [
    "TP",
    "BaselineTable",
    "commit_now",
    "current_event",
    "hold_input_partitions",
    "input_partitions",
    "record_changelog_offset",
    "seek_uncommitted_inputs_to_beginning",
]


@contextmanager
def current_event(event: Any) -> Iterator[None]:
    """Make `event` Faust's current event (what `faust.current_event()` returns)."""
    token = _current_event.set(weakref.ref(event))
    try:
        yield
    finally:
        _current_event.reset(token)


def is_changelog(consumer: Any, tp: Any) -> bool:
    """Whether a topic-partition is one of the app's table changelogs."""
    return bool(consumer._is_changelog_tp(tp))


def input_partitions(consumer: Any, tps: Iterable[Any]) -> set[Any]:
    """The non-changelog partitions among tps."""
    return {tp for tp in tps if not consumer._is_changelog_tp(tp)}


def hold_input_partitions(consumer: Any, holding: Callable[[], bool]) -> None:
    """Wrap `consumer.resume_partitions` so input partitions stay paused while holding().

    Records of "buffered" partitions are yielded even when paused, so held
    partitions are also removed from Faust's buffered set.
    """
    resume = consumer.resume_partitions

    def resume_partitions(tps: Any) -> None:
        tps = set(tps)
        if holding():
            held = input_partitions(consumer, tps)
            tps -= held
            consumer._buffered_partitions.difference_update(held)
        resume(tps)

    consumer.resume_partitions = resume_partitions


async def seek_uncommitted_inputs_to_beginning(consumer: Any, tps: Iterable[Any]) -> list[Any]:
    """Put those of tps without a committed offset at their beginning; returns them.

    Why: aiokafka starts fetching a partition as soon as it is assigned, at
    the reset position (earliest), before Faust pauses it for recovery.
    Faust later drops those records (the stream queues are cleared when
    recovery ends) and seeks every partition to its committed offset; a
    partition with no committed offset is not sought at all, so it resumes
    *after* the dropped records. A worker that crashed before its first
    commit thus lost every event its successor fetched during recovery (seen
    on the real broker: 40 events never decided). Seeking those partitions
    to their beginning is what `auto.offset.reset=earliest` promises; the
    events already decided are recognised by each session's stored position.

    Call it after Faust's seek (`Consumer.perform_seek` records no committed
    offset as None in `Consumer._read_offset`) and before the partitions are
    resumed; the consumer thread's `seek_to_beginning` waits for the reset.
    """
    uncommitted = sorted(tp for tp in tps if consumer._read_offset.get(tp) is None)
    if uncommitted:  # aiokafka wants its own TopicPartition, not Faust's TP
        await consumer._thread.seek_to_beginning(
            *(TopicPartition(tp.topic, tp.partition) for tp in uncommitted))
    return uncommitted


def record_changelog_offset(table: Any, topic: str, partition: int, offset: int) -> None:
    """What Faust's own changelog callback records: recovery resumes after offset."""
    table.data.set_persisted_offset(TP(topic, partition), offset)


async def commit_now(consumer: Any) -> None:
    """Commit acked offsets now; waits out (and repeats after) a commit in progress."""
    while await consumer.maybe_wait_for_commit_to_finish():
        pass  # another commit ran (maybe without our acks): commit again
    await consumer.commit()


class BaselineTable(faust.Table[Any, Any]):
    """A Faust table whose changelog records the batch publishes itself.

    Faust would send one changelog record per write through its background
    buffer, one `await` each; the batch instead appends them to its own
    record batches (partition = the source event's partition, explicitly)
    and waits for one delivery. Reads, local store writes, recovery and
    standby replicas stay Faust's.
    """

    def on_key_set(self, key: Any, value: Any) -> None:
        self.partition_for_key(key)  # asserts a current event on a co-partitioned topic
        self._sensor_on_set(self, key, value)
