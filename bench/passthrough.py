"""The Kafka baseline: a bare aiokafka consume-and-produce passthrough process.

`python -m bench.passthrough --bootstrap B --input T --output O --group G`
copies every record of T to O (same key and value), with the worker's
delivery discipline but none of its work: fetch a batch, send each record
with the plain `producer.send` API (acks=all, idempotent, like the worker's
output producer), await the batch's delivery, commit, repeat. It prints
`assigned <epoch seconds>` once it owns partitions, then runs until SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.abc import ConsumerRebalanceListener


class _Announce(ConsumerRebalanceListener):  # type: ignore[misc]
    """Print the moment consumption can start (the bench's start of the clock)."""

    def __init__(self) -> None:
        self.done = False

    async def on_partitions_revoked(self, revoked: Any) -> None:
        return None

    async def on_partitions_assigned(self, assigned: Any) -> None:
        if assigned and not self.done:
            self.done = True
            print(f"assigned {time.time():.6f}", flush=True)


async def run(args: argparse.Namespace) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    consumer = AIOKafkaConsumer(bootstrap_servers=args.bootstrap, group_id=args.group,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                max_poll_records=args.batch)
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, acks="all",
                                enable_idempotence=True, max_batch_size=256 * 1024)
    await producer.start()
    await consumer.start()
    consumer.subscribe([args.input], listener=_Announce())
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=args.batch)
            if not batches:
                continue
            futures = [await producer.send(args.output, value=msg.value, key=msg.key)
                       for records in batches.values() for msg in records]
            await asyncio.gather(*futures)
            await consumer.commit()
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
        await producer.stop()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bootstrap", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--group", required=True)
    p.add_argument("--batch", type=int, default=1000, help="max records per fetch")
    asyncio.run(run(p.parse_args()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
