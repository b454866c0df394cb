"""The inbox between the fetch loop and the batch agent (worker/kafka/inbox.py).

Why: it is where fetching overlaps processing. It must keep records in
order, never hand out more than a batch, hold back the fetch loop while a
batch and the next one are waiting (bounded read-ahead), and drop a fetch
instead of blocking when flow control is suspended (a rebalance started).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any

import pytest

from worker.kafka.inbox import Inbox

pytestmark = pytest.mark.asyncio


class _Flow:
    def __init__(self) -> None:
        self.event = asyncio.Event()

    def suspended(self) -> bool:
        return self.event.is_set()

    async def wait_suspended(self, aw: Awaitable[Any]) -> bool:
        a = asyncio.ensure_future(aw)
        b = asyncio.ensure_future(self.event.wait())
        await asyncio.wait({a, b}, return_when=asyncio.FIRST_COMPLETED)
        for t in (a, b):
            t.cancel()
        return self.event.is_set()


async def test_records_come_out_in_order_in_batches_of_at_most_max() -> None:
    flow, inbox = _Flow(), Inbox(limit=100)
    assert await inbox.put([1, 2, 3], flow.suspended, flow.wait_suspended)
    assert await inbox.put([4, 5], flow.suspended, flow.wait_suspended)
    assert await inbox.take(2) == [1, 2]
    assert await inbox.take(10) == [3, 4, 5]  # fetches merge into one batch
    assert len(inbox) == 0


async def test_a_full_inbox_holds_the_fetch_loop_until_a_batch_is_taken() -> None:
    flow, inbox = _Flow(), Inbox(limit=3)
    assert await inbox.put([1, 2, 3], flow.suspended, flow.wait_suspended)
    put = asyncio.ensure_future(inbox.put([4], flow.suspended, flow.wait_suspended))
    await asyncio.sleep(0.01)
    assert not put.done()
    assert await inbox.take(2) == [1, 2]
    assert await asyncio.wait_for(put, 1)
    assert await inbox.take(5) == [3, 4]


async def test_a_suspended_flow_drops_the_fetch_instead_of_blocking() -> None:
    flow, inbox = _Flow(), Inbox(limit=1)
    assert await inbox.put([1], flow.suspended, flow.wait_suspended)
    put = asyncio.ensure_future(inbox.put([2], flow.suspended, flow.wait_suspended))
    await asyncio.sleep(0.01)
    flow.event.set()
    assert await asyncio.wait_for(put, 1) is False
    assert not await inbox.put([3], flow.suspended, flow.wait_suspended)
    assert inbox.clear() == 1
    assert inbox.dropped == 3
    assert len(inbox) == 0


async def test_take_waits_for_the_next_fetch() -> None:
    flow, inbox = _Flow(), Inbox(limit=10)
    taker = asyncio.ensure_future(inbox.take(5))
    await asyncio.sleep(0.01)
    assert not taker.done()
    await inbox.put([7], flow.suspended, flow.wait_suspended)
    assert await asyncio.wait_for(taker, 1) == [7]
