"""10,000 hostile records through one real worker on the real broker (issue 8, "done when").

Why: the worker's promise is that bad input never crashes it, never stalls a
partition and is never silently dropped. Each hostile record (see
`hostile.py`) is followed on its partition by a canary login; the drill
asserts that the worker never exits, that every canary's command arrives
(so no partition stalled behind a poison record), that each record whose
decoding fails is in the dead letters with a reason, and that the worker's
counters account for every event: processed, skipped or dead.
"""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from detectors import SessionEvent
from tests.integration.hostile import canary, hostile_records
from tests.integration.worker_harness import Collector, Deployment, WorkerProcess
from worker.formats import Invalid, Skip, decode_line

pytestmark = [pytest.mark.kafka, pytest.mark.asyncio, pytest.mark.slow]

RECORDS = 10_000
PARTITIONS = 4


def _metric(text: str, name: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + " ") or line.startswith(name + "{"))


async def test_hostile_records_never_crash_stall_or_vanish(
        kafka_bootstrap: str, unique_topic_prefix: str, tmp_path: Path) -> None:
    d = Deployment(kafka_bootstrap, unique_topic_prefix, partitions=PARTITIONS)
    worker = WorkerProcess(d, f"{unique_topic_prefix}-app", tmp_path / "state",
                           tmp_path / "worker.log", batch_size=500).start()
    poison = list(hostile_records(RECORDS))
    expected = Counter[str]()
    dead_at: dict[int, int] = {}  # index of a poison record -> its dead letters
    for i, (_key, value) in enumerate(poison):
        outcomes = decode_line(value)
        kinds = Counter("dead" if isinstance(o, Invalid) else "skipped" if isinstance(o, Skip)
                        else "event" for o in outcomes)
        assert sum(kinds.values()) == len(outcomes)
        expected.update(kinds)
        if kinds["dead"]:
            dead_at[i] = kinds["dead"]
        assert all(isinstance(o, Invalid | Skip | SessionEvent) for o in outcomes)
    expected["event"] += RECORDS  # the canaries
    assert expected["dead"] > 1000 and expected["event"] > RECORDS, expected
    try:
        await worker.wait_ready()
        started = time.monotonic()
        async with Collector(kafka_bootstrap, {d.topics["commands"]: PARTITIONS,
                                               d.topics["dlq"]: PARTITIONS}) as c:
            producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all",
                                        max_request_size=8 << 20, linger_ms=20)
            await producer.start()
            offsets: dict[tuple[int, int], int] = {}
            try:
                futures = []
                for i, (key, value) in enumerate(poison):
                    partition = i % PARTITIONS
                    futures.append((i, await producer.send(d.topics["input"], value, key=key,
                                                           partition=partition)))
                    await producer.send(d.topics["input"], canary(i), key=f"c{i}".encode(),
                                        partition=partition)
                for i, fut in futures:
                    meta = await fut
                    offsets[(meta.partition, meta.offset)] = i
            finally:
                await producer.stop()
            want = {f"canary-{i}" for i in range(RECORDS)}

            def canaries() -> set[str]:
                return {orjson.loads(r.value)["cause_event_id"]
                        for r in c.records[d.topics["commands"]]} & want

            await c.wait_for(lambda: len(canaries()) == RECORDS
                             and c.count(d.topics["dlq"]) >= expected["dead"],
                             timeout=600, what="every canary's command and every dead letter")
            await c.settle(2.0)
            took = time.monotonic() - started
            dlq = c.records[d.topics["dlq"]]
        metrics = worker.metrics()
        assert worker.proc is not None and worker.proc.poll() is None, "the worker never exited"
    finally:
        assert worker.terminate() == 0, worker.tail()
    # Every record whose decoding fails is a dead letter, with its reason, once per event.
    per_record = Counter(offsets[(int(r.headers["sessionwarden.origin.partition"]),
                                  int(r.headers["sessionwarden.origin.offset"]))] for r in dlq)
    assert per_record == Counter(dead_at)
    assert all(r.headers["sessionwarden.error"] for r in dlq)
    assert {r.value for r in dlq} <= {v for _k, v in poison}, "dead letters keep the original"
    # The worker's counters account for every event read.
    assert _metric(metrics, "sessionwarden_internal_errors_total") == 0
    assert _metric(metrics, 'sessionwarden_events_total{outcome="dead"}') == expected["dead"]
    assert _metric(metrics, 'sessionwarden_events_total{outcome="skipped"}') == expected["skipped"]
    processed = sum(_metric(metrics, f'sessionwarden_events_total{{outcome="{o}"}}')
                    for o in ("processed", "duplicate", "redelivered"))
    assert processed == expected["event"]
    print(f"\nFUZZ {RECORDS} hostile + {RECORDS} canary records in {took:.1f}s; "
          f"{dict(expected)}; {len(dlq)} dead letters")
