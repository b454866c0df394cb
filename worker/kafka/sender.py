"""Batched, keyed producing without one `await` per record.

Records are appended synchronously to aiokafka record batches, one open batch
per topic-partition (partition chosen by the same murmur2 partitioner the Java
client and aiokafka use, so keyed records land where any producer would put
them). `flush()` submits the batches and awaits their delivery: one network
wait per input batch, however many records it produced. Batches of one
topic-partition are submitted in creation order and aiokafka keeps at most one
request in flight per broker, so per-key order is kept.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Sequence
from typing import Any

from aiokafka.errors import (
    CorruptRecordException,
    MessageSizeTooLargeError,
    RecordListTooLargeError,
    RecordTooLargeError,
)
from aiokafka.partitioner import DefaultPartitioner

Header = tuple[str, bytes]
Submitted = tuple[str, int, int, "asyncio.Future[Any]"]
Delivered = tuple[str, int, int]
REJECTIONS = (MessageSizeTooLargeError, RecordListTooLargeError, RecordTooLargeError,
              CorruptRecordException)
"""Broker answers that condemn the records themselves: retrying cannot help."""


RECORD_OVERHEAD = 128
"""Bytes a record adds to its value, key and headers in a batch (headers, varints, batch header)."""


class Rejected(Exception):
    """Records that cannot be sent for what they are (too large for their topic).

    `tags` are the caller's tags of those records (the batch uses the index of
    the input record that made them), so their inputs can be dead-lettered
    instead of being retried forever.
    """

    def __init__(self, tags: set[int], error: BaseException) -> None:
        super().__init__(f"{len(tags)} record(s) cannot be sent: {error!r}")
        self.tags = tags
        self.error = error


class BrokerRejected(Exception):
    """The broker refused a whole record batch (e.g. a topic's limit was lowered).

    The idempotent producer cannot go on after that (its sequence numbers are
    spent): the caller replaces it, refreshes the topic limits, and sends
    again; the client-side size check then names the culprit records.
    """

    def __init__(self, error: BaseException) -> None:
        super().__init__(f"the broker refused a record batch: {error!r}")
        self.error = error


class BatchSender:
    """Accumulates records per topic-partition; `flush` delivers them all."""

    def __init__(self, producer: Any, limits: dict[str, int] | None = None) -> None:
        self._producer = producer
        self.limits = dict(limits or {})
        """topic -> largest record (bytes) its max.message.bytes accepts."""
        self._partitioner = DefaultPartitioner()
        self._partitions: dict[str, list[int]] = {}
        self._open: dict[tuple[str, int], Any] = {}
        self._full: list[tuple[tuple[str, int], Any]] = []

        self._round_robin: dict[str, itertools.cycle[int]] = {}
        self.pending = 0
        """Records appended since the last flush."""

    async def prepare(self, topics: Iterable[str]) -> None:
        """Load partition metadata for topics (once, before the first `add`)."""
        for topic in topics:
            if topic not in self._partitions:
                parts = sorted(await self._producer.partitions_for(topic))
                if not parts:
                    raise RuntimeError(f"topic {topic!r} has no partitions")
                self._partitions[topic] = parts
                self._round_robin[topic] = itertools.cycle(parts)

    def partition_for(self, topic: str, key: bytes | None) -> int:
        """The partition a keyed record goes to; unkeyed records rotate."""
        parts = self._partitions[topic]
        if key is None:
            return next(self._round_robin[topic])
        partition: int = self._partitioner(key, parts, parts)
        return partition

    def add(self, topic: str, key: bytes | None, value: bytes,
            headers: Sequence[Header] = (), partition: int | None = None,
            tag: int | None = None) -> None:
        """Append one record; never waits. A record too big for its topic is `Rejected`."""
        limit = self.limits.get(topic)
        if limit is not None:
            size = len(value) + len(key or b"") + RECORD_OVERHEAD + sum(
                len(k) + len(v) for k, v in headers)
            if size > limit:
                error = MessageSizeTooLargeError(
                    f"record of {size:,} bytes for {topic}, which accepts {limit:,}")
                if tag is None:
                    raise error
                raise Rejected({tag}, error)
        p = self.partition_for(topic, key) if partition is None else partition
        tp = (topic, p)
        batch = self._open.get(tp)
        if batch is None:
            batch = self._open[tp] = self._producer.create_batch()
        hdrs = list(headers)
        if batch.append(timestamp=None, key=key, value=value, headers=hdrs) is None:
            self._full.append((tp, batch))
            batch = self._open[tp] = self._producer.create_batch()
            if batch.append(timestamp=None, key=key, value=value, headers=hdrs) is None:
                self._open.pop(tp)
                error = MessageSizeTooLargeError(f"record of {len(value)} bytes does not fit")
                if tag is None:
                    raise error
                raise Rejected({tag}, error)
        self.pending += 1

    def discard(self) -> None:
        """Drop every appended record that was not submitted yet."""
        self._open = {}
        self._full = []
        self.pending = 0

    async def submit(self) -> list[Submitted]:
        """Hand every batch to the producer; returns (topic, partition, records, future).

        Waits only while aiokafka drains an earlier batch of the same
        partition (its back-pressure), never for the broker's answer.
        """
        batches = [*self._full, *self._open.items()]
        self._full = []
        self._open = {}
        self.pending = 0
        return [(topic, partition, batch.record_count(),
                 await self._producer.send_batch(batch, topic, partition=partition))
                for (topic, partition), batch in batches]

    async def flush(self) -> list[Delivered]:
        """Submit every batch and wait until the broker acknowledged all of them.

        Returns (topic, partition, last offset written) per delivered batch.
        Raises the producer's error if any batch could not be delivered; the
        caller must then not acknowledge the input that produced them.
        """
        if not self.pending:
            return []
        return await delivered(await self.submit())


async def delivered(submitted: Sequence[Submitted]) -> list[Delivered]:
    """Wait for submitted batches: (topic, partition, last offset written) per batch.

    Raises `BrokerRejected` if the broker refused a batch for its records,
    else the first delivery error.
    """
    if not submitted:
        return []
    results: list[Any] = await asyncio.gather(*(fut for *_, fut in submitted),
                                              return_exceptions=True)
    errors = [r for r in results if isinstance(r, BaseException)]
    refused = next((r for r in errors if isinstance(r, REJECTIONS)), None)
    if refused is not None:
        raise BrokerRejected(refused)
    if errors:
        raise errors[0]  # not about the records: the caller must not acknowledge
    return [(topic, partition, meta.offset + count - 1)
            for (topic, partition, count, _fut), meta in zip(submitted, results, strict=True)]
