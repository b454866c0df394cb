"""Kafka and HTTP wiring of the enforcer: consumer group, state restore, producer, web.

A plain aiokafka consumer group (no Faust: there is no table to keep, and
offsets must be committed exactly when this loop says so). Partition
assignment restores the same partitions of the state topic before any
command of them is read; revocation forgets them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from aiokafka.abc import ConsumerRebalanceListener

from worker.enforce.metrics import CONTENT_TYPE, EnforceMetrics
from worker.enforce.service import BatchReport, Enforcer, Item, intent_entry
from worker.kafka.client import aiokafka_security, bootstrap_servers
from worker.kafka.sender import BatchSender
from worker.settings import Settings

log = logging.getLogger("sessionwarden.enforce")

EXIT_DELIVERY_FAILED = 70
STATE_TOPIC_CONFIG = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}


class TopicMismatch(RuntimeError):
    """The state topic's partitions do not match the commands topic's."""


async def ensure_enforcer_topics(settings: Settings, *, timeout: float = 30.0) -> int:
    """Create missing commands/results/state topics; return the commands' partition count.

    The state topic must have exactly the commands topic's partition count:
    state records go to the partition number of their command.
    """
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: PLC0415
    from aiokafka.errors import TopicAlreadyExistsError  # noqa: PLC0415

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(settings.broker),
                                request_timeout_ms=int(timeout * 1000),
                                **aiokafka_security(settings))
    await admin.start()
    try:
        names = [settings.commands_topic, settings.results_topic, settings.enforce_state_topic]
        existing = set(await admin.list_topics())
        counts: dict[str, int] = {}
        if present := [n for n in names if n in existing]:
            for t in await admin.describe_topics(present):
                if t.get("error_code") == 0 and t.get("partitions"):
                    counts[t["topic"]] = len(t["partitions"])
        partitions = counts.get(settings.commands_topic, settings.topic_partitions)
        state_count = counts.get(settings.enforce_state_topic)
        if state_count is not None and state_count != partitions:
            raise TopicMismatch(
                f"state topic {settings.enforce_state_topic} has {state_count} partitions, "
                f"{settings.commands_topic} has {partitions}; they must be equal")
        missing = [NewTopic(name=n, num_partitions=partitions,
                            replication_factor=settings.topic_replication,
                            topic_configs=STATE_TOPIC_CONFIG
                            if n == settings.enforce_state_topic else {})
                   for n in names if n not in counts]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing, timeout_ms=int(timeout * 1000))
        deadline = time.monotonic() + timeout
        while True:
            described = await admin.describe_topics(names)
            ready = {t["topic"] for t in described if t.get("error_code") == 0
                     and t.get("partitions") and all(p["leader"] >= 0 for p in t["partitions"])}
            if ready >= set(names):
                return partitions
            if time.monotonic() > deadline:
                raise TimeoutError(f"topics without leaders: {set(names) - ready}")
            await asyncio.sleep(0.1)
    finally:
        await admin.close()


class EnforcerApp:
    """Runs an `Enforcer` on Kafka until `stop()`."""

    def __init__(self, settings: Settings, enforcer: Enforcer,
                 on_fatal: Callable[[BaseException], None] | None = None) -> None:
        self.settings = settings
        self.enforcer = enforcer
        self.metrics: EnforceMetrics = enforcer.metrics
        self.on_fatal = on_fatal or _fatal_exit
        self._stop = asyncio.Event()
        self._consumer: Any = None
        self._producer: Any = None
        self._sender: BatchSender | None = None
        self._restoring = 0
        self.assigned: set[int] = set()
        self.batches = 0
        self.last_report = BatchReport()

    # -- lifecycle -------------------------------------------------------------

    def stop(self) -> None:
        self._stop.set()

    @property
    def ready(self) -> bool:
        return bool(self.assigned) and self._restoring == 0

    async def run(self) -> None:
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: PLC0415

        s = self.settings
        security = aiokafka_security(s)
        servers = bootstrap_servers(s.broker)
        self._producer = AIOKafkaProducer(
            bootstrap_servers=servers, client_id=f"{s.enforce_group}-results", acks="all",
            enable_idempotence=True, linger_ms=2,
            request_timeout_ms=int(s.producer_request_timeout * 1000), **security)
        await self._producer.start()
        self._sender = BatchSender(self._producer)
        await self._sender.prepare([s.results_topic, s.enforce_state_topic])
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=servers, group_id=s.enforce_group, client_id=s.enforce_group,
            enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=int(s.broker_session_timeout * 1000),
            heartbeat_interval_ms=int(s.broker_heartbeat_interval * 1000),
            max_poll_records=s.enforce_batch_size, **security)
        await self._consumer.start()
        self._consumer.subscribe([s.commands_topic], listener=_Listener(self))
        try:
            while not self._stop.is_set():
                batch = await self._consumer.getmany(timeout_ms=200,
                                                     max_records=s.enforce_batch_size)
                batch = await self._restored(batch)
                records = [r for rs in batch.values() for r in rs]
                if not records:
                    continue
                try:
                    await self.process(records)
                except Exception as exc:  # results undeliverable: never commit
                    self.on_fatal(exc)
                    raise
                offsets = {tp: rs[-1].offset + 1 for tp, rs in batch.items()}
                try:
                    await self._consumer.commit(offsets)
                except Exception as exc:  # e.g. a rebalance: the states make re-delivery safe
                    log.warning("offset commit failed", extra={"error": repr(exc)})
        finally:
            with contextlib.suppress(Exception):
                await self._consumer.stop()
            with contextlib.suppress(Exception):
                await self._producer.stop()

    async def _restored(self, batch: dict[Any, list[Any]]) -> dict[Any, list[Any]]:
        """Hold a fetched batch until the state of its partitions is restored.

        aiokafka starts fetching for new partitions while the assignment
        listener still restores their state, so `getmany` can hand out
        records of a partition whose intents and results are not loaded yet;
        applying them then would re-send in-doubt commands (the kill -9 drill
        caught exactly that). Records of partitions revoked meanwhile are
        dropped uncommitted: their new owner reads them again.
        """
        while True:
            owned = {tp.partition for tp in self._consumer.assignment()}
            batch = {tp: rs for tp, rs in batch.items() if tp.partition in owned}
            if self._restoring == 0 and {tp.partition for tp in batch} <= self.assigned:
                return batch
            await asyncio.sleep(0.01)

    # -- one batch -------------------------------------------------------------

    async def process(self, records: list[Any]) -> BatchReport:
        """Steps 1-4 of worker/enforce/service.py's module doc for one batch."""
        e = self.enforcer
        s = self.settings
        sender = self._sender
        assert sender is not None
        report = BatchReport(records=len(records))
        batch_ids: set[str] = set()
        items: list[Item] = []
        for rec in records:
            item = Item(rec.partition, rec.offset, int(rec.timestamp))
            e.classify(item, rec.value, rec.key, f"{rec.topic}:{rec.partition}:{rec.offset}",
                       batch_ids)
            if item.apply or item.outcome is not None:
                items.append(item)
            else:
                report.duplicates += 1
        to_apply = [i for i in items if i.apply]
        fresh = [i for i in to_apply if not i.in_doubt]
        for item in fresh:  # 2) intents, durable before any IdP call
            entry = intent_entry(item)
            sender.add(s.enforce_state_topic, entry.command_id.encode(), entry.to_bytes(),
                       partition=item.partition)
            e.state.put(entry)
        await sender.flush()
        await e.apply(to_apply)  # 3)
        now = time.time()
        for item in items:  # 4) results and states, one flush
            assert item.outcome is not None and item.state is not None
            sender.add(s.results_topic, item.outcome["session_id"].encode(),
                       _dumps(item.outcome))
            sender.add(s.enforce_state_topic, item.state.command_id.encode(),
                       item.state.to_bytes(), partition=item.partition)
            report.outcomes[item.outcome["outcome"]] += 1
        await sender.flush()
        e.after_results(items)
        for rec in records:
            self.metrics.latency.observe(max(0.0, now - rec.timestamp / 1000))
        report.applied = len(to_apply)
        report.results = len(items)
        self.batches += 1
        self.last_report = report
        return report

    # -- partitions ------------------------------------------------------------

    async def restore(self, partitions: set[int]) -> None:
        """Read the state topic's partitions from the beginning to their end."""
        from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: PLC0415

        if not partitions:
            return
        s = self.settings
        self._restoring += 1
        started = time.monotonic()
        reader = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers(s.broker),
                                  enable_auto_commit=False, group_id=None,
                                  **aiokafka_security(s))
        await reader.start()
        try:
            tps = [TopicPartition(s.enforce_state_topic, p) for p in sorted(partitions)]
            reader.assign(tps)
            await reader.seek_to_beginning(*tps)
            ends = await reader.end_offsets(tps)
            pending = {tp for tp in tps if ends[tp] > 0}
            count = 0
            deadline = time.monotonic() + s.producer_request_timeout
            while pending:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"state topic {s.enforce_state_topic} not restored in "
                                       f"{s.producer_request_timeout:g}s")
                batch = await reader.getmany(*pending, timeout_ms=500)
                for tp, msgs in batch.items():
                    self.enforcer.state.load(tp.partition, ((m.key, m.value) for m in msgs))
                    count += len(msgs)
                for tp in list(pending):
                    if await reader.position(tp) >= ends[tp]:
                        pending.discard(tp)
            self.enforcer.rebuild_window()
            log.info("state restored", extra={
                "partitions": sorted(partitions), "records": count,
                "entries": len(self.enforcer.state),
                "held": sum(1 for _ in self.enforcer.state.held()),
                "seconds": round(time.monotonic() - started, 3)})
        finally:
            await reader.stop()
            self._restoring -= 1
        self.assigned |= partitions
        self.metrics.ready.set(1 if self.ready else 0)

    def forget(self, partitions: set[int]) -> None:
        self.enforcer.state.forget(partitions)
        self.assigned -= partitions
        self.metrics.ready.set(1 if self.ready else 0)

    # -- web -------------------------------------------------------------------

    async def serve_web(self, host: str, port: int) -> Any:
        """/health (200 when ready) and /metrics on host:port; returns the runner."""
        from aiohttp import web  # noqa: PLC0415

        async def health(_request: Any) -> Any:
            body = {"status": "ready" if self.ready else "starting",
                    "partitions": sorted(self.assigned), "batches": self.batches,
                    "held": sum(1 for _ in self.enforcer.state.held())}
            return web.json_response(body, status=200 if self.ready else 503)

        async def metrics(_request: Any) -> Any:
            return web.Response(body=self.metrics.render(), headers={"Content-Type":
                                                                     CONTENT_TYPE})

        app = web.Application()
        app.router.add_get("/health", health)
        app.router.add_get("/metrics", metrics)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, host, port).start()
        return runner


def _dumps(value: Any) -> bytes:
    import orjson  # noqa: PLC0415

    return orjson.dumps(value)


def _fatal_exit(exc: BaseException) -> None:
    """Results could not be delivered: exit at once, without committing offsets."""
    log.critical("cannot deliver results; exiting without committing", exc_info=exc)
    for handler in logging.getLogger().handlers:
        handler.flush()
    os._exit(EXIT_DELIVERY_FAILED)


class _Listener(ConsumerRebalanceListener):  # type: ignore[misc]
    """aiokafka rebalance listener: restore on assignment, forget on revocation."""

    def __init__(self, app: EnforcerApp) -> None:
        self.app = app

    async def on_partitions_revoked(self, revoked: Any) -> None:
        self.app.forget({tp.partition for tp in revoked})

    async def on_partitions_assigned(self, assigned: Any) -> None:
        try:
            await self.app.restore({tp.partition for tp in assigned} - self.app.assigned)
        except Exception as exc:  # without its state a partition must not be processed
            self.app.on_fatal(exc)
            raise
