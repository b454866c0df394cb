"""Whole fetches handed from the consumer's fetch loop to the batch agent.

The fetch loop (`faust_compat.install_bulk_drain`) puts each fetch's input
records here; the agent takes up to `batch_size` records at a time. The
inbox holds at most `limit` records: while it is full the fetch loop waits
(backpressure), so at most one batch is being processed while the next one
is already fetched -- fetching overlaps processing, and no more than that is
read ahead. No Kafka and no Faust in here: flow control is a pair of
callables the caller supplies.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any


class Inbox:
    """A bounded FIFO of fetched records, counted in records, taken in batches."""

    def __init__(self, limit: int) -> None:
        if limit < 1:
            raise ValueError("limit must be >= 1")
        self.limit = limit
        self._chunks: deque[list[Any]] = deque()
        self._count = 0
        self._nonempty = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self.dropped = 0
        """Records put while flow was suspended (never delivered)."""

    def __len__(self) -> int:
        return self._count

    async def put(self, records: list[Any], suspended: Callable[[], bool],
                  wait_suspended: Callable[[Awaitable[Any]], Awaitable[bool]]) -> bool:
        """Append one fetch; waits while full. False (records dropped) if flow got suspended.

        `wait_suspended(aw)` waits for `aw` or for flow to be suspended,
        whichever is first, and says whether flow was suspended.
        """
        while self._count >= self.limit:
            if suspended():
                break
            self._space.clear()
            if await wait_suspended(self._space.wait()):
                break
        if suspended():
            self.dropped += len(records)
            return False
        self._chunks.append(records)
        self._count += len(records)
        self._nonempty.set()
        return True

    async def take(self, max_records: int) -> list[Any]:
        """Up to `max_records` records, oldest first; waits until there is one."""
        while not self._chunks:
            self._nonempty.clear()
            await self._nonempty.wait()
        chunks = self._chunks
        out: list[Any] = []
        while chunks and len(out) < max_records:
            chunk = chunks[0]
            room = max_records - len(out)
            if len(chunk) <= room:
                out.extend(chunks.popleft())
            else:
                out.extend(chunk[:room])
                chunks[0] = chunk[room:]
        self._count -= len(out)
        if self._count < self.limit:
            self._space.set()
        return out

    def clear(self) -> int:
        """Drop every held record (a rebalance started); returns how many."""
        n = self._count
        self._chunks.clear()
        self._count = 0
        self.dropped += n
        self._space.set()
        return n
