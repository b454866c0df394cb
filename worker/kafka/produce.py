"""`sessionwarden produce`: replay a historical log file into the input topic.

Each record is keyed by its routing key (`worker.routing`: tenant + user id,
else the session id; found with the same `decode_line` the worker uses), so
all events of a user -- and so of each of their sessions -- land on one
partition in file order: the worker then sees what replay sees. The value is
the original record bytes. A JSON-array line holding events of several users
is split into one message per element, or their state would be split from
later events.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from detectors import SessionEvent
from worker.codec import dumps, loads
from worker.errors import CouldNotRun
from worker.formats import decode_line, decode_record
from worker.inputs import InputFile, check_inputs
from worker.kafka.client import aiokafka_security, bootstrap_servers
from worker.kafka.sender import BatchSender, Submitted
from worker.replay import Progress, iter_records
from worker.routing import RouteMemory
from worker.settings import Settings

SUBMIT_EVERY = 2000
"""Records per submitted group of batches."""
MAX_IN_FLIGHT = 8
"""Submitted groups awaiting delivery before the reader waits."""


def _route(outcome: object, memory: RouteMemory) -> bytes | None:
    return memory.key(outcome).encode() if isinstance(outcome, SessionEvent) else None


def keyed_records(raw: bytes, fmt: str = "auto",
                  memory: RouteMemory | None = None) -> list[tuple[bytes | None, bytes]]:
    """The Kafka (key, value) messages for one input record.

    Key = the routing key (`worker.routing`: tenant + user id, else the
    session id); None when the record has none (invalid or not session
    activity: the worker dead-letters or skips it anyway).
    """
    memory = memory if memory is not None else RouteMemory(1024)
    value = raw.rstrip(b"\r\n")
    keys = list(dict.fromkeys(_route(o, memory) for o in decode_line(value, fmt)))
    routed = [k for k in keys if k is not None]
    if len(routed) <= 1:
        return [(routed[0] if routed else None, value)]
    items: list[Any] = loads(value)  # only a JSON array line can hold several users
    return [(_route(decode_record(item, fmt), memory), dumps(item)) for item in items]


@dataclass(slots=True)
class ProduceSummary:
    """What `produce` sent."""

    records_read: int = 0
    messages_sent: int = 0
    keyed: int = 0
    unkeyed: int = 0
    split_lines: int = 0
    bytes_sent: int = 0
    seconds: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        rate = self.messages_sent / self.seconds if self.seconds > 0 else 0.0
        return {"records_read": self.records_read, "messages_sent": self.messages_sent,
                "keyed": self.keyed, "unkeyed": self.unkeyed, "split_lines": self.split_lines,
                "bytes_sent": self.bytes_sent, "seconds": round(self.seconds, 3),
                "messages_per_second": round(rate, 1)}


def _messages(files: Sequence[InputFile], fmt: str, summary: ProduceSummary,
              ) -> Iterator[tuple[bytes | None, bytes]]:
    memory = RouteMemory()
    for path in files:
        for _lineno, raw in iter_records(path):
            summary.records_read += 1
            records = keyed_records(raw, fmt, memory)
            if len(records) > 1:
                summary.split_lines += 1
            yield from records


async def produce(files: Sequence[Path | InputFile], settings: Settings, topic: str,
                  fmt: str = "auto",
                  progress_stream: IO[str] | None = None) -> ProduceSummary:
    """Send every record of files to topic, in order; returns the summary."""
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415

    from worker.kafka.startup import connect_admin, partition_counts, prepare_topics  # noqa: PLC0415

    inputs = [f if isinstance(f, InputFile) else check_inputs([f])[0] for f in files]
    if settings.create_topics:
        await prepare_topics(settings.model_copy(update={"input_topic": topic}))
    else:
        admin = await connect_admin(settings)
        try:
            if topic not in await partition_counts(admin, [topic]):
                raise CouldNotRun(f"topic {topic} does not exist (and SESSIONWARDEN_CREATE_TOPICS"
                                  " is off)")
        finally:
            await admin.close()
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap_servers(settings.broker), client_id="sessionwarden-produce",
        acks="all", enable_idempotence=True, max_batch_size=settings.producer_batch_bytes,
        max_request_size=settings.max_message_bytes + 65536, linger_ms=5,
        **aiokafka_security(settings))
    summary = ProduceSummary()
    progress = Progress(sum(i.size for i in inputs), progress_stream or sys.stderr)
    started = time.perf_counter()
    await producer.start()
    try:
        sender = BatchSender(producer)
        await sender.prepare([topic])
        in_flight: list[list[Submitted]] = []
        for key, value in _messages(inputs, fmt, summary):
            sender.add(topic, key, value)
            summary.messages_sent += 1
            summary.bytes_sent += len(value)
            if key is None:
                summary.unkeyed += 1
            else:
                summary.keyed += 1
            if sender.pending >= SUBMIT_EVERY:
                in_flight.append(await sender.submit())
                if len(in_flight) > MAX_IN_FLIGHT:
                    await asyncio.gather(*(fut for *_, fut in in_flight.pop(0)))
                progress.update(summary.bytes_sent, summary.messages_sent)
        in_flight.append(await sender.submit())
        for group in in_flight:
            await asyncio.gather(*(fut for *_, fut in group))
    finally:
        await producer.stop()
        progress.done()
    summary.seconds = time.perf_counter() - started
    return summary
