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
2. `Consumer._is_changelog_tp`, `Consumer._buffered_partitions` and
   `Consumer._getmany(active_partitions, timeout)`: input partitions are held
   paused, and left out of fetches, until recovery ends
   (`hold_input_partitions`, the seek race described in docs/worker.md).
3. `Table.data.set_persisted_offset`: recovery starts after the last
   changelog offset we wrote ourselves (`record_changelog_offset`).
4. `Consumer.maybe_wait_for_commit_to_finish` + `Consumer.commit`: commit the
   batch's acks now (`commit_now`).
5. `Table._sensor_on_set` and `Table.partition_for_key`: our table publishes
   its own changelog records, so `on_key_set` only keeps Faust's sensor
   (`BaselineTable`).
6. `Consumer._drain_messages(fetcher)`, the fetch loop the Fetcher service
   runs, and what it uses: `Consumer.getmany` (one fetch, filtered to active
   partitions, generation-checked, as `(tp, Message)` pairs), `callback`,
   `_read_offset`, `_add_gap`, `_commit_every`/`_n_acked`, `suspend_flow`,
   `wait_first`, `consumer_stopped_errors`, `diag` and `_stopped`, plus
   `App.tables.changelog_queue` and `App.flow_control` (`install_bulk_drain`):
   records of the input topic go to the batch code a whole fetch at a time
   instead of one `wait_first` per message, and changelog records skip
   `wait_first` when their delivery cannot block (docs/faust-wait-first.md).
7. `Consumer._unacked_messages` and `Message.tracked`: a batch taken for
   processing is "in flight", so a rebalance or a stop waits for it
   (`track_messages`); `Consumer.ack` marks it done (`ack_messages`).
8. `App.consumer_generation_id`, `App.flow_control` and `Message.generation_id`:
   records fetched in a revoked generation, or while flow is suspended, are
   dropped, as Faust's Stream drops them (`live_messages`).
9. `Monitor.stream_inbound_time`: Faust's livelock detector reads it to tell
   a stalled stream; the batch path reports progress there
   (`mark_stream_progress`).
10. `AIOKafkaConsumerThread._create_worker_consumer` (the consumer thread is
   `Consumer._thread`) and the aiokafka consumer's `_fetch_max_wait_ms`,
   read when it starts: Faust's literal 1,500 ms is replaced
   (`set_fetch_max_wait`).
11. `faust.stores.rocksdb.Store._db_for_partition` (the table's `data`), whose
   rocksdict databases take `get`/`put` of bytes: the batch reads and writes
   baselines in their partition's database directly (`partition_store`).
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import Awaitable, Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from time import monotonic
from typing import Any

import faust
from faust.streams import _current_event
from faust.transport.consumer import CONSUMER_FETCHING
from faust.types import TP

__all__ = [
    "TP",
    "BaselineTable",
    "EventOf",
    "ack_messages",
    "commit_now",
    "current_event",
    "hold_input_partitions",
    "input_partitions",
    "install_bulk_drain",
    "live_messages",
    "mark_stream_progress",
    "partition_store",
    "record_changelog_offset",
    "set_fetch_max_wait",
    "track_messages",
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
    partitions are also removed from Faust's buffered set. And a fresh
    consumer's first assignment makes every partition active before recovery
    pauses anything, so `Consumer._getmany` (the fetch from aiokafka's
    buffer) is also wrapped to leave input partitions out while holding:
    records taken from aiokafka then would move its position past them, and
    aiokafka's `seek_to_committed` does not seek back when the committed
    offset is 0 or unset.
    """
    resume = consumer.resume_partitions
    getmany = consumer._getmany

    async def _getmany(active_partitions: Any, timeout: float) -> Any:
        if active_partitions is not None and holding():
            active_partitions = {tp for tp in active_partitions
                                 if consumer._is_changelog_tp(tp)}
        return await getmany(active_partitions, timeout)

    consumer._getmany = _getmany

    def resume_partitions(tps: Any) -> None:
        tps = set(tps)
        if holding():
            held = input_partitions(consumer, tps)
            tps -= held
            consumer._buffered_partitions.difference_update(held)
        resume(tps)

    consumer.resume_partitions = resume_partitions


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


class EventOf:
    """The least of a Faust Event that `current_event` users read: `.message`.

    A table picks the store partition of a write from the current event's
    message; the batch path has Messages, not Events, and building a Faust
    Event per record would cost more than the rest of the bookkeeping.
    """

    __slots__ = ("__weakref__", "message")

    def __init__(self, message: Any) -> None:
        self.message = message


Deliver = Callable[[list[Any]], Awaitable[None]]


def install_bulk_drain(consumer: Any, bulk_topics: Iterable[str], deliver: Deliver) -> None:
    """Replace the fetch loop: records of `bulk_topics` go to `deliver`, a fetch at a time.

    The loop is Faust's `Consumer._drain_messages` (0.15) with one change:
    a record of a bulk topic is appended to the fetch's batch instead of
    being passed to `callback` under `wait_first(callback(message),
    suspend_flow.wait())` -- two tasks and a cancellation per message, the
    largest single cost of a Faust stream. Everything else is Faust's own:
    `getmany` (active partitions only, so paused/held partitions yield
    nothing; generation change and suspended flow end the fetch), read
    offsets (records below them are dropped, as Faust drops them), offset
    gaps, `broker_commit_every`; records of other topics (the table's
    changelog: recovery and standby replicas) still go through `callback`,
    awaited directly when it cannot block -- flow control active, no
    rebalance starting, and room in the tables' changelog queue (the
    conductor's callback only waits on those) -- and under Faust's
    `wait_first` race otherwise.

    `deliver(batch)` runs once per fetch, after the fetch was read; it must
    honour flow control itself as Faust's callback does: wait while the
    app's flow control is suspended (recovery), drop the batch when the
    consumer's `suspend_flow` is set (a rebalance started). The batch's read
    offsets are set when `deliver` returns, as Faust sets a message's once
    its callback returned. The records are not tracked or acked here: the
    taker does both (`track_messages`, `ack_messages`).
    """
    bulk = frozenset(bulk_topics)

    async def _drain_messages(fetcher: Any) -> None:
        callback = consumer.callback
        getmany = consumer.getmany
        consumer_should_stop = consumer._stopped.is_set
        fetcher_should_stop = fetcher._stopped.is_set
        read_offsets = consumer._read_offset
        set_flag = consumer.diag.set_flag
        unset_flag = consumer.diag.unset_flag
        commit_every = consumer._commit_every
        acks_enabled_for = consumer.app.topics.acks_enabled_for
        wait_first = consumer.wait_first
        suspend_flow = consumer.suspend_flow
        flow_control = consumer.app.flow_control
        is_changelog_tp = consumer._is_changelog_tp
        changelog_queue = consumer.app.tables.changelog_queue
        try:
            while not (consumer_should_stop() or fetcher_should_stop()):
                set_flag(CONSUMER_FETCHING)
                ait = getmany(timeout=1.0)
                await consumer.sleep(0)
                if not consumer.should_stop:
                    batch: list[Any] = []
                    append = batch.append
                    batch_read: dict[Any, int] = {}
                    async for tp, message in ait:
                        offset = message.offset
                        r_offset = batch_read.get(tp, read_offsets[tp])
                        if r_offset is None or offset >= r_offset:
                            gap = offset - (r_offset or 0)
                            if gap > 1 and r_offset and acks_enabled_for(message.topic):
                                await consumer._add_gap(tp, r_offset + 1, offset)
                            if tp.topic in bulk:
                                append(message)
                                batch_read[tp] = offset
                            else:
                                if commit_every is not None and consumer._n_acked >= commit_every:
                                    consumer._n_acked = 0
                                    await consumer.commit()
                                if (not suspend_flow.is_set() and flow_control.is_active()
                                        and is_changelog_tp(tp) and not changelog_queue.full()):
                                    # Cannot block (flow on, queue has room): no race needed.
                                    await callback(message)
                                else:
                                    await wait_first(callback(message), suspend_flow.wait())
                                read_offsets[tp] = offset
                    if batch:
                        if commit_every is not None and consumer._n_acked >= commit_every:
                            consumer._n_acked = 0
                            await consumer.commit()
                        await deliver(batch)
                        # Like Faust's loop, which sets a read offset once the callback
                        # returned: after a seek made while `deliver` waited for flow
                        # control, re-fetched copies of these records are dropped.
                        read_offsets.update(batch_read)
                    unset_flag(CONSUMER_FETCHING)
        except consumer.consumer_stopped_errors:
            if consumer.transport.app.should_stop:
                consumer.log.info("Broker stopped consumer, shutting down...")
                return
            raise
        except asyncio.CancelledError:
            if consumer.transport.app.should_stop:
                consumer.log.info("Consumer shutting down for user cancel.")
                return
            raise
        except Exception as exc:
            consumer.log.exception("Drain messages raised: %r", exc)
            raise
        finally:
            unset_flag(CONSUMER_FETCHING)

    consumer._drain_messages = _drain_messages


def live_messages(app: Any, messages: Sequence[Any]) -> list[Any]:
    """The messages Faust's Stream would still process now (others are dropped, not acked).

    Faust's Stream skips an event when flow control is suspended or the
    event's message was fetched in an earlier consumer generation: its
    partition may have been revoked, and its records are fetched again from
    the committed offset by whoever owns it now.
    """
    if not app.flow_control.is_active():
        return []
    generation = app.consumer_generation_id
    if all(m.generation_id == generation for m in messages):
        return list(messages)
    return [m for m in messages if m.generation_id == generation]


def track_messages(consumer: Any, messages: Iterable[Any]) -> None:
    """Mark messages in flight: a rebalance or a stop waits until they are acked."""
    add = consumer._unacked_messages.add
    for message in messages:
        message.tracked = True
        add(message)


def ack_messages(consumer: Any, messages: Iterable[Any]) -> None:
    """Ack processed messages: their offsets may be committed (no gap below them)."""
    ack = consumer.ack
    for message in messages:
        ack(message)


def mark_stream_progress(app: Any, tps: Iterable[Any]) -> None:
    """Tell Faust's livelock detector that these partitions' records are being processed."""
    monitor = app.monitor
    if monitor is not None:
        now = monotonic()
        inbound = monitor.stream_inbound_time
        for tp in tps:
            inbound[tp] = now


def set_fetch_max_wait(consumer: Any, ms: int) -> None:
    """Make the worker's aiokafka consumer wait at most `ms` for a fetch to fill.

    Faust creates it with `fetch_max_wait_ms=1500`, a literal in
    `AIOKafkaConsumerThread._create_worker_consumer`. aiokafka keeps one fetch
    request in flight per broker; one that holds only partitions without new
    records (idle standby changelogs; Faust's `__assignor-__leader` topic,
    which the worker disables, was always one) sits at the broker for that
    long, and every input partition waits behind it.
    """
    thread = consumer._thread
    create = thread._create_worker_consumer

    def _create_worker_consumer(transport: Any) -> Any:
        client = create(transport)
        client._fetch_max_wait_ms = ms
        return client

    thread._create_worker_consumer = _create_worker_consumer


class PartitionStore:
    """Reads and writes of a RocksDB-backed table's partition databases, without the table.

    Faust's path for one `table.get(key)` under a current event is
    `Table.get` -> `__contains__` (a RocksDB get) -> `__getitem__` (the same
    get again) -> the serializer -> `Store._get`, plus an LRU key-index update;
    a write goes the same way down. The batch knows each key's partition
    (its source event's), so it reads and writes that partition's database
    directly: one get or put per key, the same bytes (the table's raw
    serializer stores a str key as its UTF-8 bytes). Faust's key index,
    used only for lookups without a current event, is left alone: the
    worker makes none.
    """

    __slots__ = ("_db_for_partition",)

    def __init__(self, store: Any) -> None:
        self._db_for_partition = store._db_for_partition

    def get(self, partition: int, key: bytes) -> bytes | None:
        value: bytes | None = self._db_for_partition(partition).get(key)
        return value

    def put(self, partition: int, key: bytes, value: bytes) -> None:
        self._db_for_partition(partition).put(key, value)


def partition_store(table: Any) -> PartitionStore | None:
    """Direct access to the table's partition databases; None for other stores (memory://)."""
    store = table.data
    if not callable(getattr(store, "_db_for_partition", None)):
        return None
    return PartitionStore(store)
