"""The Faust application: topics, the baseline table and one thin batch agent.

Built by `create_app(settings)`; nothing happens at import time. The
consumer's fetch loop hands whole fetches of input records to an `Inbox`
(`faust_compat.install_bulk_drain`; Faust's per-message stream costs more
than the pipeline, see docs/faust-wait-first.md). The agent takes up to
`batch_size` records from it, drops those Faust's stream would drop (revoked
generation, suspended flow), marks the rest in flight and hands them to
`BatchRunner`, which calls the same `Pipeline` as `sessionwarden replay` and
then, in this order:

1. publishes every output record (commands, audit, alerts, DLQ) with
   non-blocking appends, and awaits ONE delivery flush for the batch;
2. writes the batch's baselines to the table's store, each under the Kafka
   event it came from, and their changelog records to that event's
   partition;
3. awaits those changelog records' delivery (a second flush) -- while the
   agent already evaluates and publishes the next batch;
4. acks the events (in input order) and commits their offsets in the
   background (one commit in flight).

A crash before 4 re-delivers the batch: the re-sent commands carry the same
command_ids, and none is lost, because no baseline that contains an event
can be stored before that event's outputs are delivered. Any failure to
deliver stops the process without committing (see `fatal_exit`).
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import time
from collections import Counter
from collections.abc import Callable, Sequence
from functools import cached_property
from typing import Any

import faust

from worker.about import run_facts
from worker.codec import dumps
from worker.kafka.batch import BatchResult, evaluate_batch, origin_of
from worker.kafka.client import (
    aiokafka_security,
    bootstrap_servers,
    faust_broker_url,
    faust_credentials,
)
from worker.kafka.faust_compat import (
    BaselineTable,
    EventOf,
    PartitionStore,
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
from worker.kafka.inbox import Inbox
from worker.kafka.metrics import CONTENT_TYPE, Metrics
from worker.kafka.sender import BatchSender, BrokerRejected, Rejected, Submitted, delivered
from worker.kafka.startup import topic_limits
from worker.pipeline import Pipeline
from worker.settings import Settings
from worker.useragent import parse_agent

log = logging.getLogger("sessionwarden.worker")

TABLE_NAME = "baselines"
JWKS_CONTENT_TYPE = "application/jwk-set+json"
EXIT_DELIVERY_FAILED = 70
MAX_REJECTION_ROUNDS = 4
"""Rounds of dead-lettering refused inputs before a batch counts as undeliverable."""


def fatal_exit(exc: BaseException) -> None:
    """Stop at once, without committing: the un-acked batch is re-delivered.

    A graceful stop would let Faust commit offsets; after a failed delivery
    that could skip the batch, so this is the one place where we do not.
    """
    log.critical("cannot deliver a batch; exiting without committing offsets",
                 exc_info=exc)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(EXIT_DELIVERY_FAILED)


class SessionWardenApp(faust.App):
    """A faust.App that keeps the input partitions paused until recovery is over.

    Faust's recovery ends (`Recovery.on_recovery_completed`) by resuming the
    input partitions, *then* seeking them to their committed offsets (one
    OffsetFetch round trip per partition: seconds on a loaded host), and only
    then `flow_control.resume()`, which clears the stream queues. The
    fetcher already runs (flow was resumed for the changelog restore), so in
    that window it delivers input records from the pre-seek position: the
    agent processes some of them, the queue clear discards the rest, and the
    drain loop's read offsets -- reset by the seek, then raised again by
    records still in flight -- make it drop the re-fetched copies as
    "already read" and mark the skipped offsets as a gap that may be
    committed. Those events were never processed: their commands were lost
    (or, with a hole at the head, the partition's commit stalls for good).

    Here every `resume_partitions` of input partitions between a rebalance
    start and the end of recovery is held back and applied in
    `on_rebalance_end`, after the seek and after the queues were cleared, so
    no input record is fetched before its partition sits at the committed
    offset.
    """

    _hold_inputs = True
    """True from a rebalance start until recovery ended (also before the first)."""

    bulk_topics: tuple[str, ...] = ()
    """Topics whose records the fetch loop hands to `inbox` a fetch at a time."""

    inbox: Inbox | None = None

    fetch_max_wait_ms = 100
    """How long the broker may hold a fetch without new records (Faust: 1,500 ms)."""

    def _new_consumer(self) -> Any:
        consumer: Any = super()._new_consumer()
        hold_input_partitions(consumer, lambda: self._hold_inputs)
        set_fetch_max_wait(consumer, self.fetch_max_wait_ms)
        inbox = self.inbox
        if inbox is not None and self.bulk_topics:
            suspended = consumer.suspend_flow.is_set
            flow_control = self.flow_control

            async def wait_suspended(aw: Any) -> bool:
                await consumer.wait_first(aw, consumer.suspend_flow.wait())
                return bool(suspended())

            async def deliver(batch: list[Any]) -> None:
                # As Faust's callback (`acquire_flow_control`): records fetched while
                # recovery runs wait for it to end. Dropping them instead would lose
                # them when the committed offset is 0 or unset: aiokafka's
                # seek_to_committed() does not seek there, so they are not re-fetched.
                if not flow_control.is_active() and not suspended():
                    await wait_suspended(flow_control.acquire())
                await inbox.put(batch, suspended, wait_suspended)

            install_bulk_drain(consumer, self.bulk_topics, deliver)
        return consumer

    def on_rebalance_start(self) -> None:
        self._hold_inputs = True  # runs in the consumer thread: only a flag here
        super().on_rebalance_start()

    def on_rebalance_end(self) -> None:
        """Recovery is over, input partitions seeked, stream queues cleared: fetch."""
        super().on_rebalance_end()
        self._hold_inputs = False
        consumer: Any = self.consumer
        consumer.resume_partitions(input_partitions(consumer, consumer.assignment()))


class BatchRunner:
    """Evaluates, publishes and stores one batch of Faust events (see module doc)."""

    def __init__(self, app: faust.App, settings: Settings, pipeline: Pipeline,
                 table: BaselineTable, metrics: Metrics) -> None:
        self.app = app
        self.settings = settings
        self.pipeline = pipeline
        self.table = table
        self.metrics = metrics
        self.topics = {"commands": settings.commands_topic, "audit": settings.audit_topic,
                       "alerts": settings.alerts_topic, "dlq": settings.dlq_topic}
        if pipeline.signer is not None:
            self.topics["signals"] = settings.signals_topic
        self.changelog_topic = table.changelog_topic.get_topic_name()
        self._producer: Any = None
        self._sender: BatchSender | None = None
        self._lock = asyncio.Lock()
        self._committing: asyncio.Future[None] | None = None
        self._commit_again = False
        self.batches = 0

    async def _ensure_sender(self) -> BatchSender:
        if self._sender is not None:
            return self._sender
        async with self._lock:
            if self._sender is None:
                from aiokafka import AIOKafkaProducer  # noqa: PLC0415

                s = self.settings
                topics = [*self.topics.values(), self.changelog_topic]
                limits = await topic_limits(s, topics)
                producer = AIOKafkaProducer(
                    bootstrap_servers=bootstrap_servers(s.broker),
                    client_id=f"{s.app_id}-outputs", acks="all", enable_idempotence=True,
                    # A batch must fit every topic it may go to.
                    max_batch_size=min(s.producer_batch_bytes, *limits.values()),
                    max_request_size=s.max_message_bytes + 65536,
                    request_timeout_ms=int(s.producer_request_timeout * 1000),
                    **aiokafka_security(s))
                await producer.start()
                sender = BatchSender(producer, limits)
                await sender.prepare(topics)
                self._producer, self._sender = producer, sender
        assert self._sender is not None
        return self._sender

    async def stop(self) -> None:
        """Flush and close the output producer (after the last batch was acked)."""
        producer, self._producer, self._sender = self._producer, None, None
        if producer is not None:
            await producer.stop()

    @cached_property
    def _direct(self) -> PartitionStore | None:
        """The table's partition databases (RocksDB), None for a memory store.

        Looked up at the first batch, once the table's store exists.
        """
        return partition_store(self.table)

    def _read(self, events: Sequence[Any], key: str, index: int) -> bytes | None:
        direct = self._direct
        if direct is not None:
            return direct.get(events[index].message.partition, key.encode())
        with current_event(events[index]):
            value: bytes | None = self.table.get(key)
        return value

    def _store(self, events: Sequence[Any], writes: dict[str, tuple[bytes, int]],
               sender: BatchSender) -> None:
        """Write baselines to the local store and queue their changelog records.

        Each write is made under its own source event: Faust's store picks
        the partition from the current event, and the changelog record goes
        to that same partition, so a rebalance restores it where it belongs.
        """
        table = self.table
        changelog = self.changelog_topic
        direct = self._direct
        for key, (data, index) in writes.items():
            event = events[index]
            partition = event.message.partition
            raw_key = key.encode()
            if direct is not None:
                direct.put(partition, raw_key, data)
            else:
                with current_event(event):
                    table[key] = data
            sender.add(changelog, raw_key, data, partition=partition)

    async def run(self, messages: Sequence[Any]) -> list[Submitted]:
        """Steps 1 and 2 for one batch: outputs delivered, baselines stored and sent.

        Returns the batch's changelog records in flight; `finish` awaits
        them (step 3). The agent evaluates the next batch meanwhile.
        Raises if the batch cannot be delivered.
        """
        started = time.perf_counter()
        events = _events_of(messages)
        result, per_kind = await self._publish(events, messages)  # 1) outputs ...
        sender = await self._ensure_sender()
        flushed = time.perf_counter()
        self._store(events, result.writes, sender)  # 2) ... before state is stored
        submitted = await sender.submit()
        self.batches += 1
        if log.isEnabledFor(logging.DEBUG):
            log.debug("batch done", extra={
                "events": len(events), "publish_s": round(flushed - started, 4),
                "store_s": round(time.perf_counter() - flushed, 4)})
        self._observe(messages, result.unkeyed, result.internal_errors, per_kind, started)
        return submitted

    async def finish(self, submitted: Sequence[Submitted]) -> None:
        """Step 3: the batch's changelog records are durable (then it may be acked).

        Raises if any of them could not be delivered: the batch must not be acked.
        """
        table = self.table
        for topic, partition, offset in await delivered(submitted):
            record_changelog_offset(table, topic, partition, offset)

    async def _publish(self, events: Sequence[Any], messages: Sequence[Any],
                       ) -> tuple[BatchResult, Counter[str]]:
        """Evaluate the batch and deliver its outputs; inputs the broker refuses are dead letters.

        A record too large for its topic would be refused on every retry,
        stalling the partition. The sender checks each record against its
        topic's `max.message.bytes` (read at start); a refused record's input
        is dead-lettered and the batch is evaluated and sent again without it
        (the other records are re-sent with the same ids). If the broker
        itself refuses a batch (its limit was lowered since), the producer is
        replaced, the limits are read again, and the same check then names
        the culprits. Any other delivery failure propagates: no ack.
        """
        stats = copy.deepcopy(self.pipeline.stats)
        rejected: dict[int, str] = {}
        topics = self.topics
        for _round in range(MAX_REJECTION_ROUNDS):
            result = evaluate_batch(messages, self.pipeline,
                                    lambda key, index: self._read(events, key, index), rejected)
            per_kind: Counter[str] = Counter()
            sender = await self._ensure_sender()
            try:
                for rec in result.emitted:
                    sender.add(topics[rec.kind], rec.key, rec.value, rec.headers, tag=rec.index)
                    per_kind[rec.kind] += 1
                await sender.flush()
            except Rejected as exc:
                sender.discard()
                self.pipeline.stats = copy.deepcopy(stats)
                reason = f"output rejected by the broker: {exc.error}"[:500]
                rejected.update(dict.fromkeys(exc.tags, reason))
                log.error("output records too large for their topic; dead-lettering their inputs",
                          extra={"inputs": [origin_of(messages[i]) for i in sorted(exc.tags)],
                                 "error": str(exc.error)[:300]})
                continue
            except BrokerRejected as exc:
                self.pipeline.stats = copy.deepcopy(stats)
                log.error("the broker refused a record batch; reading topic limits again",
                          extra={"error": repr(exc.error)[:300]})
                await self.stop()  # a fresh idempotent producer and fresh limits
                continue
            return result, per_kind
        raise RuntimeError(f"outputs still refused after {MAX_REJECTION_ROUNDS} rounds")

    async def commit(self) -> None:
        """Commit the offsets just acked, now rather than on Faust's timer.

        At a rebalance Faust discards the acked-but-uncommitted offsets of
        revoked partitions, so their events are processed again. Those events
        are in the stored baselines, and the engine drops re-delivered ids only
        within its window of recent ids per session (32): a longer re-delivery
        would re-decide old events against a newer baseline. Committing every
        batch keeps re-delivery to the batches in flight.
        """
        try:
            await commit_now(self.app.consumer)
        except Exception as exc:  # e.g. a rebalance is running; the next commit covers it
            log.warning("offset commit after batch failed", extra={"error": repr(exc)})

    def commit_soon(self) -> None:
        """Commit in the background: one commit in flight, and one more if acks came meanwhile.

        The commit is a round trip to the group coordinator; awaiting it before
        the next batch would add it to every batch's latency.
        """
        self._commit_again = True
        if self._committing is None or self._committing.done():
            self._committing = asyncio.ensure_future(self._commit_while_acked())

    async def _commit_while_acked(self) -> None:
        while self._commit_again:
            self._commit_again = False
            await self.commit()

    def _observe(self, messages: Sequence[Any], unkeyed: int, internal: int,
                 per_kind: Counter[str], started: float) -> None:
        m = self.metrics
        m.observe_stats(self.pipeline.stats)
        m.observe_outputs({self.topics[k]: n for k, n in per_kind.items() if k != "dlq"},
                          per_kind["dlq"])
        if unkeyed:
            m.unkeyed.inc(unkeyed)
        if internal:
            m.internal_errors.inc(internal)
        m.batch_size.observe(len(messages))
        m.batch_seconds.observe(time.perf_counter() - started)
        m.observe_latencies(time.time(), (msg.timestamp for msg in messages))
        last: dict[Any, int] = {}
        for msg in messages:
            last[msg.tp] = msg.offset
        consumer = self.app.consumer
        for tp, offset in last.items():
            try:
                m.set_lag(tp.topic, tp.partition, consumer.highwater(tp) - offset - 1)
            except Exception:  # best effort: the partition may just have been revoked
                continue


def _events_of(messages: Sequence[Any]) -> list[EventOf]:
    """A current-event stand-in per message, one per partition (only `.message` is read)."""
    by_tp: dict[Any, EventOf] = {}
    events: list[EventOf] = []
    for message in messages:
        event = by_tp.get(message.tp)
        if event is None:
            event = by_tp[message.tp] = EventOf(message)
        events.append(event)
    return events


WARM_UP_AGENT = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
                 "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36")


def warm_up() -> None:
    """Pay one-time costs before the worker reports ready, not on its first events.

    The user-agent parser builds its matchers on first use (about 0.3 s of
    CPU): on the first batch that is latency, and in a benchmark it would be
    counted as per-event work. Pure: it only fills the parser and its cache.
    """
    parse_agent(WARM_UP_AGENT)


ROCKSDB_OPTIONS = {"write_buffer_size": 8 << 20, "max_write_buffer_number": 2,
                   "block_cache_size": 64 << 20}
"""RocksDB sized for this table (one DB per partition): Faust's defaults are 3 write
buffers of 64 MiB and a 2 GiB block cache per DB, for records of ~300 bytes (format 2)
that the worker mostly reads from its own batch. Compression is RocksDB's default
(Faust's rocksdict path takes no compression option)."""


def readiness(app: faust.App) -> tuple[bool, dict[str, Any]]:
    """Ready = joined the group, no rebalance running, tables recovered."""
    recovery: Any = app.tables.recovery  # type: ignore[attr-defined]
    try:
        assigned = sorted(f"{tp.topic}:{tp.partition}" for tp in app.consumer.assignment())
    except Exception:  # consumer not started yet
        return False, {"status": "starting"}
    recovered = recovery.completed.is_set() and not recovery.in_recovery
    ready = recovered and not app.rebalancing
    status = "ready" if ready else ("rebalancing" if app.rebalancing else "recovering")
    return ready, {"status": status, "assigned": assigned, "rebalances": app.rebalancing_count}


def create_app(settings: Settings, *, pipeline: Pipeline | None = None,
               on_fatal: Callable[[BaseException], None] = fatal_exit) -> faust.App:
    """Build the Faust app for these settings (no side effects until it starts)."""
    pipeline = pipeline or Pipeline.from_settings(settings)
    warm_up()
    if pipeline.signer is None:
        log.warning("session signals are off: no signing key configured "
                    "(SESSIONWARDEN_SIGNING_KEY_FILE); see docs/outputs.md")
    partitions = settings.topic_partitions
    app = SessionWardenApp(
        settings.app_id,
        broker=faust_broker_url(settings.broker),
        broker_credentials=faust_credentials(settings),
        store=settings.store,
        datadir=str(settings.data_dir),
        autodiscover=False,
        processing_guarantee="at_least_once",
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=settings.broker_session_timeout,
        broker_heartbeat_interval=settings.broker_heartbeat_interval,
        broker_commit_interval=settings.commit_interval,
        topic_partitions=partitions,
        topic_replication_factor=settings.topic_replication,
        table_standby_replicas=settings.table_standby_replicas,
        producer_max_request_size=settings.max_message_bytes + 65536,
        stream_wait_empty=True,
        # No `on_leader` timers here: without the leader-election topic, fetches never
        # hold only its always-idle partition (see `SessionWardenApp.fetch_max_wait_ms`).
        topic_disable_leader=True,
        web_enabled=settings.web_enabled,
        # Only /health and /metrics: Faust's own views would serve the session
        # table (user ids, IPs, locations) to anyone who can reach the port.
        web_router_enabled=False,
        web_tables_enabled=False,
        web_graph_enabled=False,
        web_stats_enabled=False,
        web_metrics_enabled=False,
        web_port=settings.web_port,
        web_bind=settings.web_host,
        web_in_thread=False,
    )
    # Raw bytes in and out: the domain model is not a faust.Record.
    inbox = app.inbox = Inbox(limit=max(1, settings.batch_size))
    app.fetch_max_wait_ms = max(1, round(settings.fetch_max_wait * 1000))
    app.bulk_topics = (settings.input_topic,)
    source = app.topic(settings.input_topic, partitions=partitions,
                       schema=faust.Schema(key_type=bytes, value_type=bytes,
                                           key_serializer="raw", value_serializer="raw"))
    # bytes types make the table's serializers "raw". Do not share a Schema
    # with the topic: the changelog topic would rewrite it to json.
    table = BaselineTable(app, name=TABLE_NAME, default=None, partitions=partitions,
                          beacon=app.tables.beacon, key_type=bytes, value_type=bytes,
                          options=dict(ROCKSDB_OPTIONS),
                          help="session id -> baseline / user profile (format-2 bytes)")
    app.tables.add(table)
    metrics = Metrics()
    metrics.describe_run(run_facts(pipeline.policy, pipeline.enricher))
    runner = BatchRunner(app, settings, pipeline, table, metrics)
    app.sessionwarden_runner = runner  # type: ignore[attr-defined]  # tests and ops

    async def sessions(stream: Any) -> None:
        """Thin agent: take fetched records, hand over, ack only what was fully handled.

        The records come from the inbox, not from `stream`: the fetch loop
        hands them over a fetch at a time (see the module doc). The agent
        still owns the topic's subscription and acks, as before. A batch's
        last step (its changelog records' delivery, then ack and commit)
        overlaps the next batch's evaluation; batches are acked in order.
        """
        consumer: Any = app.consumer
        completing: asyncio.Future[None] | None = None

        async def complete(messages: list[Any], submitted: list[Submitted]) -> None:
            try:
                await runner.finish(submitted)  # 3) state durable ...
            except Exception as exc:  # never ack, never commit
                on_fatal(exc)
                raise
            ack_messages(consumer, messages)  # 4) ... then ack and commit
            runner.commit_soon()

        while True:
            messages = live_messages(app, await inbox.take(settings.batch_size))
            if not messages:
                continue
            track_messages(consumer, messages)  # a rebalance now waits for this batch
            mark_stream_progress(app, {m.tp for m in messages})
            try:
                submitted = await runner.run(messages)
            except Exception as exc:  # delivery failed: never ack, never commit
                on_fatal(exc)
                raise
            if completing is not None:
                await completing  # acks in input order
            completing = asyncio.ensure_future(complete(messages, submitted))

    app.agent(source, name=f"{settings.app_id}.sessions")(sessions)

    async def on_shutdown(sender: Any, /, *_: Any, signal: Any = None, **__: Any) -> None:
        await runner.stop()

    app.on_before_shutdown.connect(on_shutdown)

    async def on_revoked(sender: Any, /, *args: Any, signal: Any = None,
                         **kwargs: Any) -> None:
        revoked = args[0] if args else kwargs.get("revoked", ())
        inbox.clear()  # fetched in the ending generation: the new owner fetches them again
        metrics.forget_partitions((tp.topic, tp.partition) for tp in revoked)

    app.on_partitions_revoked.connect(on_revoked)

    async def health(web: Any, request: Any) -> Any:
        ready, body = readiness(app)
        metrics.ready.set(1 if ready else 0)
        return web.json(body, status=200 if ready else 503)

    async def metrics_page(web: Any, request: Any) -> Any:
        metrics.ready.set(1 if readiness(app)[0] else 0)
        return web.bytes(metrics.render(), headers={"Content-Type": CONTENT_TYPE})

    jwks_body = dumps(pipeline.signer.jwks()) if pipeline.signer is not None else None

    async def jwks_page(web: Any, request: Any) -> Any:
        """The public keys of the SETs on the signals topic (RFC 7517 JWK Set)."""
        if jwks_body is None:
            return web.json({"error": "session signals are off: no signing key"}, status=404)
        return web.bytes(jwks_body, headers={"Content-Type": JWKS_CONTENT_TYPE})

    app.page("/health")(health)
    app.page("/metrics")(metrics_page)
    app.page("/jwks.json")(jwks_page)
    return app
