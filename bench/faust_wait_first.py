"""`python -m bench.faust_wait_first`: the per-message cost of Faust's fetch-loop dispatch.

Faust's `Consumer._drain_messages` hands every fetched record to the
conductor with `await self.wait_first(callback(message),
self.suspend_flow.wait())`. This measures, in one process and without a
broker, the CPU time per message of three ways to dispatch the same
already-fetched messages to the same trivial callback (it only appends the
message to a list, i.e. what remains when the stream work is free):

- `wait_first`: Faust's line, on a real (built, not started) Faust consumer;
- `await`: the callback awaited directly, flow checked with `is_set()`;
- `batch`: the message appended to the fetch's batch (what
  `worker.kafka.faust_compat.install_bulk_drain` does for input records).

The variants run interleaved, several rounds, and the median is printed as
JSON. See docs/faust-wait-first.md.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from typing import Any

import faust
import orjson
from faust.types import TP, ConsumerMessage


def _messages(n: int) -> list[ConsumerMessage]:
    tp = TP("in", 0)
    return [ConsumerMessage("in", 0, i, 0.0, 0, None, b"k", b"v", None, tp=tp)
            for i in range(n)]


async def _run(messages: list[ConsumerMessage], rounds: int) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        app = faust.App("wait-first-bench", broker="kafka://127.0.0.1:1", store="memory://",
                        datadir=tmp, autodiscover=False, web_enabled=False)
        consumer: Any = app.consumer
        sink: list[Any] = []

        async def callback(message: Any) -> None:
            sink.append(message)

        suspend_flow = consumer.suspend_flow
        wait_first = consumer.wait_first

        async def via_wait_first() -> None:
            for message in messages:
                await wait_first(callback(message), suspend_flow.wait())

        async def via_await() -> None:
            for message in messages:
                if suspend_flow.is_set():
                    break
                await callback(message)

        async def via_batch() -> None:
            batch: list[Any] = []
            append = batch.append
            for message in messages:
                append(message)
            sink.extend(batch)

        variants = {"wait_first": via_wait_first, "await": via_await, "batch": via_batch}
        cpu: dict[str, list[float]] = {name: [] for name in variants}
        for _ in range(rounds):
            for name, fn in variants.items():
                sink.clear()
                t0 = time.process_time()
                await fn()
                cpu[name].append((time.process_time() - t0) * 1e6 / len(messages))
                assert len(sink) == len(messages)
    med = {name: round(statistics.median(v), 2) for name, v in cpu.items()}
    return {"messages": len(messages), "rounds": rounds,
            "cpu_us_per_message": med,
            "wait_first_extra_us": round(med["wait_first"] - med["await"], 2),
            "python": sys.version.split()[0], "faust": faust.__version__}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--messages", type=int, default=50_000)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    result = asyncio.run(_run(_messages(args.messages), args.rounds))
    sys.stdout.write(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
