"""The ingest loop: poll, then events + cursor in one Kafka transaction.

The cursor topic (`<input topic>-ingest-cursors`, compacted, one partition)
holds one record per source (key = base URL | realm). At start the newest
committed cursor is read back (`read_committed`), so the poller resumes
exactly where the last committed transaction ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from worker.ingest.keycloak import Cursor, KeycloakEvents
from worker.kafka.client import aiokafka_security, bootstrap_servers
from worker.kafka.produce import keyed_records
from worker.kafka.startup import prepare_topics
from worker.routing import RouteMemory
from worker.settings import Settings

log = logging.getLogger("sessionwarden.ingest")


def cursor_topic(settings: Settings) -> str:
    return f"{settings.input_topic}-ingest-cursors"


async def ensure_cursor_topic(settings: Settings) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: PLC0415
    from aiokafka.errors import TopicAlreadyExistsError  # noqa: PLC0415

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(settings.broker),
                                **aiokafka_security(settings))
    await admin.start()
    try:
        name = cursor_topic(settings)
        if name not in set(await admin.list_topics()):
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(
                    name=name, num_partitions=1, replication_factor=settings.topic_replication,
                    topic_configs={"cleanup.policy": "compact"})])
    finally:
        await admin.close()


async def read_cursor(settings: Settings, key: str, timeout: float = 30.0) -> Cursor:
    """The newest committed cursor of `key` (an empty cursor when there is none)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: PLC0415

    tp = TopicPartition(cursor_topic(settings), 0)
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers(settings.broker),
                              enable_auto_commit=False, group_id=None,
                              isolation_level="read_committed", **aiokafka_security(settings))
    await reader.start()
    found: bytes | None = None
    try:
        reader.assign([tp])
        await reader.seek_to_beginning(tp)
        end = (await reader.end_offsets([tp]))[tp]
        deadline = time.monotonic() + timeout
        while await reader.position(tp) < end:
            if time.monotonic() > deadline:
                raise TimeoutError("cursor topic not read to its end")
            for msg in (await reader.getmany(tp, timeout_ms=500)).get(tp, []):
                if msg.key == key.encode():
                    found = msg.value
    finally:
        await reader.stop()
    return Cursor.from_bytes(found)


class IngestRunner:
    """Polls one Keycloak realm into the input topic until stopped."""

    def __init__(self, settings: Settings, source: KeycloakEvents) -> None:
        self.settings = settings
        self.source = source
        self._stop = asyncio.Event()
        self.cursor = Cursor()
        self.sent = 0
        self.polls = 0
        self.routes = RouteMemory()
        """Keys events by user (worker.routing); remembers each session's user."""

    def stop(self) -> None:
        self._stop.set()

    async def run(self, *, once: bool = False) -> None:
        from aiokafka import AIOKafkaProducer  # noqa: PLC0415

        s = self.settings
        if s.create_topics:
            await prepare_topics(s)
            await ensure_cursor_topic(s)
        self.cursor = await read_cursor(s, self.source.cursor_key)
        producer = AIOKafkaProducer(
            bootstrap_servers=bootstrap_servers(s.broker), acks="all", enable_idempotence=True,
            transactional_id=f"sessionwarden-ingest|{self.source.cursor_key}",
            **aiokafka_security(s))
        await producer.start()
        try:
            while not self._stop.is_set():
                await self.poll_once(producer)
                if once:
                    return
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), s.ingest_poll_interval)
        finally:
            await producer.stop()

    async def poll_once(self, producer: Any) -> int:
        """One poll; returns the number of events delivered."""
        self.polls += 1
        events = await self.source.poll(self.cursor)
        if not events:
            return 0
        import orjson  # noqa: PLC0415

        s = self.settings
        cursor = self.cursor.advanced(events, self.source.overlap_ms)
        async with producer.transaction():
            for event in events:
                for key, value in keyed_records(orjson.dumps(event), "keycloak", self.routes):
                    await producer.send(s.input_topic, value, key=key)
            await producer.send(cursor_topic(s), cursor.to_bytes(),
                                key=self.source.cursor_key.encode())
        self.cursor = cursor
        self.sent += len(events)
        log.info("keycloak events ingested", extra={"events": len(events),
                                                    "cursor_time": cursor.time})
        return len(events)
