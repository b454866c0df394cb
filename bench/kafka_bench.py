"""`kafka`, `scale` and worker `memory` benchmarks on a real local Apache Kafka.

How a throughput run is timed (worker and passthrough alike):

- the input topic is pre-filled once with `sessionwarden produce` (keyed by
  session id, the way production input arrives), and every run consumes it
  from the start under a fresh consumer group / app id with fresh output
  topics, so runs are independent and see the same messages;
- the clock starts when the process can consume: for the worker, the first
  time its `/health` says `ready` (joined, assigned, tables recovered;
  polled every 20 ms); for the passthrough, its partition-assignment callback;
- the clock stops when the output topics hold every expected record (their
  end offsets, polled every 100 ms). The expected count is what
  `sessionwarden replay` produced from the same file (commands + audit +
  alerts + dead letters), so "all outputs produced" is exact. The worker
  publishes a batch's outputs before it stores state and acks, so at that
  moment every input record has been fully processed;
- then the run waits for the group's committed offsets to reach the input's
  end (consumer lag zero) and reports that time separately: it depends on
  the commit interval (the worker commits every 2.8 s by default, the
  passthrough after each batch), not on processing speed.

CPU, not only wall time (the host has 2 cores shared with other work):

- every run reads the CPU time (user + system, all threads) of each measured
  process from `/proc/<pid>/stat` at the start and the end of its timed
  window, and reports it per input event (`cpu_us_per_event`); the broker's
  CPU per event is reported separately (`broker_cpu_us_per_event`);
- the whole machine's busy time comes from `/proc/stat`; what the measured
  processes (worker(s) or passthrough, broker, this bench process) did not
  use is the "other" CPU, as a share of the machine (`other_cpu_share`). A
  round where any run's other share exceeds `OTHER_CPU_LIMIT` is dropped
  from the medians (reported as `rounds_dropped`);
- scaling is reported as a CPU efficiency: one worker's CPU per event
  divided by the sum over two workers' CPU per event (1.0 = a second worker
  costs nothing extra per event; 0.9 = 11 % extra).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.structs import TopicPartition

from bench.common import (
    PY,
    REPO,
    dir_size,
    free_port,
    log,
    median,
    rate,
    rnd,
    rss_bytes,
    sessionwarden_cmd,
)
from bench.workload import latency_event

PARTITIONS = 4
CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
NCPU = os.cpu_count() or 1
INPUT_MAX_MESSAGE_BYTES = 4 * 2**20
LATENCY_POLICY = "[tenant]\nmin_idle_extension_ms = 0\n"
LATENCY_LINGER_MS = 5
"""The latency bench's producer batches for up to 5 ms, as a log shipper would (counted in
the latency: the clock starts before `send`); unbatched, the broker spends more CPU per
event on its produce requests than the worker on the event."""
OTHER_CPU_LIMIT = 0.10
"""Rounds in which other processes used more than this share of the machine are dropped."""
WORKER_ENV: dict[str, str] = {
    "SESSIONWARDEN_LOG_LEVEL": "WARNING",
    "SESSIONWARDEN_LOG_FORMAT": "text",
    "SESSIONWARDEN_WEB_HOST": "127.0.0.1",
}
"""Settings every benchmark worker gets besides its broker, names and ports.

Logging at WARNING keeps log formatting out of the measurement; everything
else (batch size, producer, commit interval, standby replicas, store) stays
at the product defaults.
"""


def _uid() -> str:
    return uuid.uuid4().hex[:8]


def process_cpu_s(pid: int) -> float:
    """CPU seconds (user + system, all threads) a process has used; 0 if it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2:].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime, stime (fields 14, 15)


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (all cores), from /proc/stat."""
    try:
        first = Path("/proc/stat").read_text().split("\n", 1)[0].split()
    except OSError:
        return 0.0
    user, nice, system, _idle, _iowait, irq, softirq, steal = (int(x) for x in first[1:9])
    return (user + nice + system + irq + softirq + steal) / CLK_TCK


@dataclass(slots=True, frozen=True)
class CpuSnapshot:
    """CPU seconds of named processes and of the whole machine at one moment."""

    wall: float
    busy: float
    procs: dict[str, float]

    @classmethod
    def take(cls, pids: dict[str, int]) -> CpuSnapshot:
        return cls(time.monotonic(), machine_busy_s(),
                   {name: process_cpu_s(pid) for name, pid in pids.items()})


def cpu_window(start: CpuSnapshot, end: CpuSnapshot, events: float) -> dict[str, Any]:
    """Per-process CPU over a window, per event, and the share other processes used."""
    wall = max(end.wall - start.wall, 1e-9)
    used = {name: max(0.0, end.procs.get(name, 0.0) - start.procs[name])
            for name in start.procs}
    other = max(0.0, (end.busy - start.busy) - sum(used.values()))
    per_event = {name: rnd(seconds * 1e6 / events, 1) if events > 0 else None
                 for name, seconds in used.items()}
    return {"wall_s": rnd(wall), "cpu_s": {k: rnd(v) for k, v in used.items()},
            "cpu_us_per_event": per_event,
            "other_cpu_share": rnd(other / (wall * NCPU), 4),
            "machine_busy_share": rnd((end.busy - start.busy) / (wall * NCPU), 4)}


def _sum_us(window: dict[str, Any], prefix: str) -> float | None:
    values = [v for k, v in window["cpu_us_per_event"].items()
              if k.startswith(prefix) and v is not None]
    return rnd(sum(values), 1) if values else None


@dataclass(slots=True)
class Kafka:
    """Clients the bench shares across runs on one broker."""

    bootstrap: str
    work: Path
    broker_pid: int | None = None
    """The broker's process id: its CPU is measured too (None: not measured)."""
    admin: Any = None
    offsets: Any = None
    created: list[str] = field(default_factory=list)

    async def start(self) -> None:
        self.admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        await self.admin.start()
        self.offsets = AIOKafkaConsumer(bootstrap_servers=self.bootstrap)
        await self.offsets.start()

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.offsets.stop()
        with contextlib.suppress(Exception):
            await self.admin.close()

    async def create_topic(self, name: str, partitions: int = PARTITIONS) -> None:
        # As large as the worker's default SESSIONWARDEN_MAX_MESSAGE_BYTES: the worker
        # refuses to start on an input topic that accepts less (the broker default, 1 MiB).
        await self.admin.create_topics([NewTopic(
            name=name, num_partitions=partitions, replication_factor=1,
            topic_configs={"max.message.bytes": str(INPUT_MAX_MESSAGE_BYTES)})])
        self.created.append(name)
        for _ in range(200):  # wait for leaders
            described = await self.admin.describe_topics([name])
            parts = described[0].get("partitions") or []
            if len(parts) == partitions and all(p["leader"] >= 0 for p in parts):
                return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"topic {name} has no leaders")

    async def delete_topics(self, prefix: str) -> None:
        """Drop a finished run's topics (outputs, changelog) so the broker stays light."""
        with contextlib.suppress(Exception):
            names = [t for t in await self.admin.list_topics() if t.startswith(prefix)]
            if names:
                await self.admin.delete_topics(names)

    async def end_total(self, topics: Sequence[str]) -> int:
        """Records in the topics (sum of end offsets; missing topics count 0)."""
        consumer = self.offsets
        tps: list[TopicPartition] = []
        missing = [t for t in topics if not consumer.partitions_for_topic(t)]
        if missing:
            await consumer._client.force_metadata_update()
        for t in topics:
            tps.extend(TopicPartition(t, p) for p in consumer.partitions_for_topic(t) or ())
        if not tps:
            return 0
        ends = await consumer.end_offsets(tps)
        return int(sum(ends.values()))

    def measured(self, **pids: int) -> dict[str, int]:
        """The processes a run's CPU window reads: the given ones, the broker, this bench."""
        out = dict(pids)
        if self.broker_pid is not None:
            out["broker"] = self.broker_pid
        out["bench"] = os.getpid()
        return out

    async def lag(self, group: str, topic: str) -> int:
        """Input records not yet committed by the group."""
        end = await self.end_total([topic])
        committed = await self.admin.list_consumer_group_offsets(group)
        done = sum(int(o.offset) for tp, o in committed.items()
                   if tp.topic == topic and o.offset > 0)
        return end - done

    async def prefill(self, topic: str, src: Path) -> dict[str, Any]:
        """Create the topic and fill it with `sessionwarden produce` (the real tool)."""
        await self.create_topic(topic)
        env = {**os.environ, "SESSIONWARDEN_BROKER": f"kafka://{self.bootstrap}"}
        t0 = time.perf_counter()
        proc = await asyncio.create_subprocess_exec(
            *sessionwarden_cmd(), "produce", str(src), "--topic", topic, "--no-create-topics",
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await proc.communicate()
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            raise RuntimeError(f"produce failed: {err.decode()[-2000:]}")
        summary = orjson.loads(out)
        return {"topic": topic, "messages": summary["messages_sent"],
                "seconds": rnd(seconds), "events_per_s": rnd(rate(summary["messages_sent"],
                                                                  seconds), 0)}


async def _http_status(port: int, path: str = "/health") -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n".encode())
        await writer.drain()
        data = await reader.read()
    finally:
        writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body


class Worker:
    """One `sessionwarden worker` process with bench-specific names and ports."""

    def __init__(self, kafka: Kafka, app_id: str, input_topic: str, run: str,
                 index: int = 0, cmd: Sequence[str] | None = None) -> None:
        self.kafka = kafka
        self.cmd = list(cmd) if cmd else sessionwarden_cmd()
        self.app_id = app_id
        self.port = free_port()
        self.data_dir = kafka.work / "state" / f"{run}-{index}"
        self.log_path = kafka.work / "logs" / f"{run}-{index}.log"
        self.outputs = [f"{run}-commands", f"{run}-audit", f"{run}-alerts", f"{run}-dlq"]
        self.env = {
            **os.environ, **WORKER_ENV,
            "SESSIONWARDEN_BROKER": f"kafka://{kafka.bootstrap}",
            "SESSIONWARDEN_APP_ID": app_id,
            "SESSIONWARDEN_INPUT_TOPIC": input_topic,
            "SESSIONWARDEN_COMMANDS_TOPIC": self.outputs[0],
            "SESSIONWARDEN_AUDIT_TOPIC": self.outputs[1],
            "SESSIONWARDEN_ALERTS_TOPIC": self.outputs[2],
            "SESSIONWARDEN_DLQ_TOPIC": self.outputs[3],
            "SESSIONWARDEN_DATA_DIR": str(self.data_dir),
            "SESSIONWARDEN_WEB_PORT": str(self.port),
        }
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        shutil.rmtree(self.data_dir, ignore_errors=True)
        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as fh:
            self.proc = await asyncio.create_subprocess_exec(
                *self.cmd, "worker", env=self.env, cwd=self.kafka.work,
                stdin=subprocess.DEVNULL, stdout=fh, stderr=subprocess.STDOUT)

    async def wait_ready(self, timeout: float = 90.0) -> float:
        """Epoch time of the first `ready` from /health (polled every 20 ms)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.returncode is not None:
                raise RuntimeError(f"worker exited ({self.proc.returncode}); see {self.log_path}")
            try:
                status, body = await _http_status(self.port)
            except OSError:
                status, body = 0, b""
            if status == 200 and b'"ready"' in body:
                return time.time()
            await asyncio.sleep(0.02)
        raise TimeoutError(f"worker not ready in {timeout}s; see {self.log_path}")

    def rss(self) -> int:
        assert self.proc is not None
        return rss_bytes(self.proc.pid)

    async def stop(self) -> None:
        """SIGTERM (graceful: flush, commit), SIGKILL after 30 s."""
        proc = self.proc
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()
        shutil.rmtree(self.data_dir, ignore_errors=True)


async def _wait_outputs(kafka: Kafka, topics: Sequence[str], expected: int,
                        timeout: float, procs: Sequence[Any] = ()) -> float:
    """Epoch time at which the topics first hold `expected` records."""
    deadline = time.monotonic() + timeout
    while True:
        if await kafka.end_total(topics) >= expected:
            return time.time()
        for p in procs:
            if p.returncode is not None:
                raise RuntimeError(f"process exited ({p.returncode}) before finishing")
        if time.monotonic() > deadline:
            got = await kafka.end_total(topics)
            raise TimeoutError(f"only {got} of {expected} outputs after {timeout}s")
        await asyncio.sleep(0.1)


async def _wait_lag_zero(kafka: Kafka, group: str, topic: str, timeout: float = 30.0,
                         ) -> float | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await kafka.lag(group, topic) <= 0:
            return time.time()
        await asyncio.sleep(0.1)
    return None


async def worker_run(kafka: Kafka, topic: str, events: int, expected: int, workers: int = 1,
                     timeout: float = 900.0, cmd: Sequence[str] | None = None,
                     ) -> dict[str, Any]:
    """One timed end-to-end run of `workers` processes in one group (see module doc)."""
    run = f"bw{workers}-{_uid()}"
    procs = [Worker(kafka, run, topic, run, i, cmd) for i in range(workers)]
    try:
        await asyncio.gather(*(w.start() for w in procs))
        pids = kafka.measured(**{f"worker{i}": w.proc.pid for i, w in enumerate(procs)
                                 if w.proc is not None})
        ready = await asyncio.gather(*(w.wait_ready() for w in procs))
        cpu_all_ready = CpuSnapshot.take(pids)
        t0, t_all = min(ready), time.time()
        outputs_at_all_ready = await kafka.end_total(procs[0].outputs)
        # Input records not yet committed: what is left for the steady window (the
        # worker commits after every batch, so at most a batch per worker is in flight).
        lag_at_all_ready = await kafka.lag(run, topic)
        t_out = await _wait_outputs(kafka, procs[0].outputs, expected, timeout,
                                    [w.proc for w in procs])
        cpu_out = CpuSnapshot.take(pids)
        rss = [w.rss() for w in procs]
        t_lag = await _wait_lag_zero(kafka, run, topic)
        seconds = t_out - t0
        # Steady state: only the work left once every worker is ready, in input
        # events. Output records are not spread evenly over the input (a session's
        # first events make more), so the group's uncommitted input counts, not outputs.
        left = min(events, lag_at_all_ready)
        cpu = cpu_window(cpu_all_ready, cpu_out, left)
        return {"workers": workers, "events": events, "outputs": expected,
                "seconds": rnd(seconds), "events_per_s": rnd(rate(events, seconds), 0),
                # Too little left once all are ready (a small file): no steady figure.
                "steady_events_per_s": (rnd(rate(int(left), t_out - t_all), 0)
                                        if left >= 0.1 * events else None),
                "cpu_us_per_event": _sum_us(cpu, "worker"),
                "broker_cpu_us_per_event": cpu["cpu_us_per_event"].get("broker"),
                "other_cpu_share": cpu["other_cpu_share"], "cpu": cpu,
                "all_ready_after_s": rnd(t_all - t0),
                "outputs_when_all_ready": outputs_at_all_ready,
                "inputs_left_when_all_ready": left,
                "lag_zero_after_s": rnd(t_lag - t0) if t_lag else None,
                "rss_bytes": rss}
    finally:
        await asyncio.gather(*(w.stop() for w in procs))
        await kafka.delete_topics(run)


async def passthrough_run(kafka: Kafka, topic: str, events: int,
                          timeout: float = 600.0) -> dict[str, Any]:
    """One timed run of the bare aiokafka passthrough on the same input."""
    run = f"bp-{_uid()}"
    out = f"{run}-out"
    await kafka.create_topic(out)
    proc = await asyncio.create_subprocess_exec(
        PY, "-m", "bench.passthrough", "--bootstrap", kafka.bootstrap, "--input", topic,
        "--output", out, "--group", run, cwd=REPO, stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL)
    try:
        assert proc.stdout is not None
        line = await asyncio.wait_for(proc.stdout.readline(), 90)
        if not line.startswith(b"assigned "):
            raise RuntimeError(f"passthrough did not start: {line!r}")
        cpu_start = CpuSnapshot.take(kafka.measured(passthrough=proc.pid))
        t0 = float(line.split()[1])
        t_out = await _wait_outputs(kafka, [out], events, timeout, [proc])
        cpu = cpu_window(cpu_start, CpuSnapshot.take(kafka.measured(passthrough=proc.pid)),
                         events)
        t_lag = await _wait_lag_zero(kafka, run, topic)
        seconds = t_out - t0
        return {"events": events, "seconds": rnd(seconds),
                "events_per_s": rnd(rate(events, seconds), 0),
                "cpu_us_per_event": cpu["cpu_us_per_event"]["passthrough"],
                "broker_cpu_us_per_event": cpu["cpu_us_per_event"].get("broker"),
                "other_cpu_share": cpu["other_cpu_share"], "cpu": cpu,
                "lag_zero_after_s": rnd(t_lag - t0) if t_lag else None}
    finally:
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(proc.wait(), 30)
            except TimeoutError:
                proc.kill()
                await proc.wait()
        await kafka.delete_topics(run)


def _kept(rounds: list[dict[str, Any]], runs: Sequence[str]) -> tuple[list[dict[str, Any]], int]:
    """Rounds where no run's other-process CPU exceeded the limit (all, if none is left)."""
    kept = [r for r in rounds
            if all((r[k].get("other_cpu_share") or 0.0) <= OTHER_CPU_LIMIT for k in runs)]
    for r in rounds:
        r["dropped"] = r not in kept
    return (kept or rounds), len(rounds) - len(kept)


def _med(rounds: Sequence[dict[str, Any]], run: str, key: str, digits: int = 0) -> float | None:
    values = [r[run][key] for r in rounds if r[run].get(key) is not None]
    return rnd(median(values), digits) if values else None


async def bench_throughput(kafka: Kafka, src: Path, expected: int, rounds: int,
                           warmup: bool = True, baseline_cmd: Sequence[str] | None = None,
                           ) -> dict[str, Any]:
    """Worker vs passthrough (and optionally a baseline worker build), interleaved.

    `baseline_cmd` is another `sessionwarden` executable (e.g. the previous
    code's venv): it runs in the same rounds, so "N times faster than
    before" is measured side by side, not against an old figure.
    """
    topic = f"bench-in-{_uid()}"
    prefill = await kafka.prefill(topic, src)
    events = int(prefill["messages"])
    log(f"kafka: pre-filled {events:,} messages in {prefill['seconds']}s")
    if warmup:  # broker page cache, JIT of the broker's fetch path, pyc files
        await passthrough_run(kafka, topic, events)
    contenders = ["worker", "passthrough", *(["baseline"] if baseline_cmd else [])]
    pairs: list[dict[str, Any]] = []
    for i in range(rounds):
        k = i % len(contenders)
        order = contenders[k:] + contenders[:k]
        if i % 2:
            order.reverse()
        got: dict[str, Any] = {}
        for which in order:
            if which == "passthrough":
                got[which] = await passthrough_run(kafka, topic, events)
            else:
                got[which] = await worker_run(kafka, topic, events, expected,
                                              cmd=baseline_cmd if which == "baseline" else None)
        w, p = got["worker"], got["passthrough"]
        ratio = w["events_per_s"] / p["events_per_s"] if p["events_per_s"] else 0.0
        got["ratio"] = rnd(ratio, 4)
        msg = (f"kafka round {i + 1}/{rounds}: worker {w['events_per_s']:,.0f} ev/s "
               f"{w['cpu_us_per_event']} us/ev, passthrough {p['events_per_s']:,.0f} ev/s "
               f"{p['cpu_us_per_event']} us/ev, ratio {ratio:.3f}")
        if "baseline" in got:
            b = got["baseline"]
            got["speedup_vs_baseline"] = rnd(_div(w["events_per_s"], b["events_per_s"]), 4)
            got["cpu_ratio_to_baseline"] = rnd(_div(w["cpu_us_per_event"] or 0.0,
                                                    b["cpu_us_per_event"] or 0.0), 4)
            msg += (f"; baseline {b['events_per_s']:,.0f} ev/s {b['cpu_us_per_event']} us/ev "
                    f"(x{got['speedup_vs_baseline']})")
        others = ", ".join(f"{r} {got[r]['other_cpu_share']:.1%}" for r in contenders)
        log(f"{msg}; other CPU: {others}")
        pairs.append(got)
    kept, dropped = _kept(pairs, contenders)
    out: dict[str, Any] = {
        "events_per_s": _med(kept, "worker", "events_per_s"),
        "cpu_us_per_event": _med(kept, "worker", "cpu_us_per_event", 1),
        "broker_cpu_us_per_event": _med(kept, "worker", "broker_cpu_us_per_event", 1),
        "passthrough_events_per_s": _med(kept, "passthrough", "events_per_s"),
        "passthrough_cpu_us_per_event": _med(kept, "passthrough", "cpu_us_per_event", 1),
        "passthrough_broker_cpu_us_per_event": _med(kept, "passthrough",
                                                    "broker_cpu_us_per_event", 1),
        "ratio_to_passthrough": rnd(median([p["ratio"] for p in kept]), 4),
        "rounds_dropped": dropped, "other_cpu_limit": OTHER_CPU_LIMIT,
        "events": events, "expected_outputs": expected, "partitions": PARTITIONS,
        "input": src.name, "prefill": prefill, "rounds": pairs,
        "_topic": topic,
    }
    if baseline_cmd:
        out["baseline"] = {
            "command": " ".join(baseline_cmd),
            "events_per_s": _med(kept, "baseline", "events_per_s"),
            "cpu_us_per_event": _med(kept, "baseline", "cpu_us_per_event", 1),
            "broker_cpu_us_per_event": _med(kept, "baseline", "broker_cpu_us_per_event", 1),
            "speedup": rnd(median([p["speedup_vs_baseline"] for p in kept]), 4),
            "cpu_ratio": rnd(median([p["cpu_ratio_to_baseline"] for p in kept]), 4)}
    return out


def set_affinity(pid: int, cpus: set[int]) -> None:
    """Pin every thread a process has now (its new threads inherit their creator's mask)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):  # a thread may have ended meanwhile
            os.sched_setaffinity(int(task.name), cpus)


def can_pin() -> bool:
    """`taskset` exists and there are two cores to split between load and workers."""
    return shutil.which("taskset") is not None and NCPU >= 2


async def worker_cpu_run(kafka: Kafka, src: Path, events: int, expected: int,
                         workers: int = 1, settle_s: float = 2.0,
                         timeout: float = 900.0, pin: bool = False) -> dict[str, Any]:
    """Steady-state CPU per event of `workers` processes that are all ready before input exists.

    The workers start on an empty topic, join, recover and settle; then the
    file is produced (`sessionwarden produce`, a separate process, not
    measured) and the window ends when every expected output is out. So no
    worker's start, join or first rebalance, and no standby catching up on
    work done before the window, is counted: only per-event work, including
    what standby replicas cost.

    With `pin`, the `taskset` cross-check: the broker, this bench process and
    the producer run on core 0, every worker on core 1 (`taskset -c 1`), so
    the workers compete with each other only.
    """
    run = f"bc{workers}-{_uid()}{'p' if pin else ''}"
    topic = f"{run}-in"
    await kafka.create_topic(topic)
    cores = set(range(NCPU))
    load_core = ["taskset", "-c", "0"] if pin else []
    cmd = ["taskset", "-c", "1", *sessionwarden_cmd()] if pin else None
    procs = [Worker(kafka, run, topic, run, i, cmd) for i in range(workers)]
    if pin:
        for pid in (os.getpid(), kafka.broker_pid):
            if pid is not None:
                set_affinity(pid, {0})
    try:
        await asyncio.gather(*(w.start() for w in procs))
        pids = kafka.measured(**{f"worker{i}": w.proc.pid for i, w in enumerate(procs)
                                 if w.proc is not None})
        await asyncio.gather(*(w.wait_ready() for w in procs))
        await asyncio.sleep(settle_s)
        await asyncio.gather(*(w.wait_ready() for w in procs))  # no rebalance under way
        start = CpuSnapshot.take(pids)
        t0 = time.time()
        env = {**os.environ, "SESSIONWARDEN_BROKER": f"kafka://{kafka.bootstrap}"}
        producer = await asyncio.create_subprocess_exec(
            *load_core, *sessionwarden_cmd(), "produce", str(src), "--topic", topic,
            "--no-create-topics", env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        t_out = await _wait_outputs(kafka, procs[0].outputs, expected, timeout,
                                    [w.proc for w in procs])
        cpu = cpu_window(start, CpuSnapshot.take(pids), events)
        _out, err = await producer.communicate()
        if producer.returncode != 0:
            raise RuntimeError(f"produce failed: {err.decode()[-2000:]}")
        return {"workers": workers, "events": events, "seconds": rnd(t_out - t0),
                "events_per_s": rnd(rate(events, t_out - t0), 0),
                "cpu_us_per_event": _sum_us(cpu, "worker"),
                "broker_cpu_us_per_event": cpu["cpu_us_per_event"].get("broker"),
                "other_cpu_share": cpu["other_cpu_share"], "cpu": cpu, "pinned": pin}
    finally:
        await asyncio.gather(*(w.stop() for w in procs))
        await kafka.delete_topics(run)
        if pin:
            for pid in (os.getpid(), kafka.broker_pid):
                if pid is not None:
                    set_affinity(pid, cores)


async def bench_scale(kafka: Kafka, topic: str, events: int, expected: int,
                      rounds: int, src: Path | None = None) -> dict[str, Any]:
    """One vs two workers in one group, interleaved, on the same pre-filled topic.

    `cpu_efficiency` = one worker's CPU per event / (two workers' CPU per
    event, summed): what a second worker costs, whatever the shared host
    does to the wall-clock ratio. It comes from `worker_cpu_run` (workers
    ready before the input is produced, given `src`); without `src`, from
    the pre-filled runs' steady windows, which include the second worker's
    join and its standby catching up.
    """
    pairs: list[dict[str, Any]] = []
    for i in range(rounds):
        order = (1, 2) if i % 2 == 0 else (2, 1)
        got = {n: await worker_run(kafka, topic, events, expected, workers=n) for n in order}
        one, two = got[1], got[2]
        cold = _div(two["events_per_s"], one["events_per_s"])
        steady = one["steady_events_per_s"] and two["steady_events_per_s"]
        ratio = (_div(two["steady_events_per_s"], one["steady_events_per_s"]) if steady
                 else cold)
        pair: dict[str, Any] = {"one": one, "two": two, "ratio": rnd(ratio, 4),
                                "ratio_cold": rnd(cold, 4)}
        c1, c2 = one, two
        if src is not None:
            cpu_runs = {n: await worker_cpu_run(kafka, src, events, expected, workers=n)
                        for n in order}
            c1, c2 = pair["cpu_one"], pair["cpu_two"] = cpu_runs[1], cpu_runs[2]
        efficiency = _div(c1["cpu_us_per_event"] or 0.0, c2["cpu_us_per_event"] or 0.0)
        pair["cpu_efficiency"] = rnd(efficiency, 4)
        pairs.append(pair)
        log(f"scale round {i + 1}/{rounds}: 1 worker {one['steady_events_per_s']} ev/s, "
            f"2 workers {two['steady_events_per_s']} ev/s (steady), ratio {ratio:.3f}"
            f"{'' if steady else ' (from first ready: too little left once all were ready)'}; "
            f"CPU {c1['cpu_us_per_event']} us/ev vs {c2['cpu_us_per_event']} us/ev summed, "
            f"efficiency {efficiency:.3f}; other CPU {c1['other_cpu_share']:.1%} / "
            f"{c2['other_cpu_share']:.1%}; from first ready {one['events_per_s']:,.0f} vs "
            f"{two['events_per_s']:,.0f}")
    runs = ("one", "two", *(("cpu_one", "cpu_two") if src is not None else ()))
    kept, dropped = _kept(pairs, runs)
    cpu1, cpu2 = ("cpu_one", "cpu_two") if src is not None else ("one", "two")
    pinned: dict[str, Any] | None = None
    if src is not None and can_pin():
        # Cross-check: broker, bench and producer on core 0, the workers on core 1.
        one = await worker_cpu_run(kafka, src, events, expected, workers=1, pin=True)
        two = await worker_cpu_run(kafka, src, events, expected, workers=2, pin=True)
        pinned = {"one_worker_cpu_us_per_event": one["cpu_us_per_event"],
                  "two_workers_cpu_us_per_event": two["cpu_us_per_event"],
                  "cpu_efficiency": rnd(_div(one["cpu_us_per_event"] or 0.0,
                                             two["cpu_us_per_event"] or 0.0), 4),
                  "one": one, "two": two}
        log(f"scale, pinned (broker+bench on core 0, workers on core 1): CPU "
            f"{one['cpu_us_per_event']} vs {two['cpu_us_per_event']} us/ev summed, "
            f"efficiency {pinned['cpu_efficiency']}")
    return {
        "pinned": pinned,
        "one_worker_events_per_s": _med(kept, "one", "steady_events_per_s"),
        "two_workers_events_per_s": _med(kept, "two", "steady_events_per_s"),
        "ratio": rnd(median([p["ratio"] for p in kept]), 4),
        "one_worker_cpu_us_per_event": _med(kept, cpu1, "cpu_us_per_event", 1),
        "two_workers_cpu_us_per_event": _med(kept, cpu2, "cpu_us_per_event", 1),
        "cpu_efficiency": rnd(median([p["cpu_efficiency"] for p in kept]), 4),
        "rounds_dropped": dropped, "other_cpu_limit": OTHER_CPU_LIMIT,
        "cold": {
            "one_worker_events_per_s": _med(kept, "one", "events_per_s"),
            "two_workers_events_per_s": _med(kept, "two", "events_per_s"),
            "ratio": rnd(median([p["ratio_cold"] for p in kept]), 4)},
        "events": events, "partitions": PARTITIONS, "rounds": pairs,
    }


def _div(a: float, b: float) -> float:
    return a / b if b else 0.0


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    if not sorted_values:
        return 0.0
    k = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[k]


def mix_events(src: Path, count: int, work: Path,
               ) -> tuple[list[tuple[bytes | None, str, bytes]], dict[str, int]]:
    """The first `count` events of a workload file and the commands each one causes.

    (key, event id, line) per event, keyed as `sessionwarden produce` keys
    them (tenant + user id); the commands are counted by `sessionwarden replay`
    of the same lines (cause_event_id -> commands), so the bench knows how
    many commands to wait for.
    """
    from bench.replay_bench import run_replay  # noqa: PLC0415
    from worker.kafka.produce import keyed_records  # noqa: PLC0415
    from worker.routing import RouteMemory  # noqa: PLC0415

    memory = RouteMemory(1 << 16)
    prepared: list[tuple[bytes | None, str, bytes]] = []
    with src.open("rb") as fh:
        for line in fh:
            if len(prepared) >= count:
                break
            # Keyed as `sessionwarden produce` keys them (the user's routing key).
            for key, value in keyed_records(line, "auto", memory):
                try:  # the workload has malformed lines on purpose (dead letters)
                    eid = str(orjson.loads(value)["event_id"])
                except (orjson.JSONDecodeError, KeyError, TypeError):
                    eid = f"unparsed-{len(prepared)}"
                prepared.append((key, eid, value))
    slice_path = work / "latency-mix.jsonl"
    slice_path.write_bytes(b"\n".join(v for _k, _e, v in prepared) + b"\n")
    out = work / "latency-mix-out"
    run_replay(slice_path, out)
    causes: dict[str, int] = {}
    for line in (out / "commands.jsonl").read_bytes().splitlines():
        cid = orjson.loads(line).get("cause_event_id")
        if cid is not None:
            causes[cid] = causes.get(cid, 0) + 1
    return prepared, causes


async def bench_latency(kafka: Kafka, events_per_s: int, seconds: float, warmup_s: float,
                        sessions: int = 1000, src: Path | None = None) -> dict[str, Any]:
    """Production -> command arrival at a paced offered load.

    With `src`, the events are the first lines of that workload file (the
    throughput run's mix: most events cause no command) under the product's
    default policy, and every command they cause is timed. Without it, every
    event is a synthetic one that causes exactly one command (a heavier
    load: each is a decision with a command and an audit record).

    Send time is taken right before `producer.send` and kept by event id; the
    command's `cause_event_id` finds it when the command is consumed from
    the commands topic. Events sent during the warm-up are not counted.
    """
    run = f"bl-{_uid()}"
    topic = f"{run}-in"
    await kafka.create_topic(topic)
    worker = Worker(kafka, run, topic, run)
    total = int(events_per_s * (seconds + warmup_s))
    counted_from = int(events_per_s * warmup_s)
    if src is None:
        # Every event must cause a command for its latency to be seen: the default
        # policy re-issues the idle expiry only when it moves by a minimum, so the
        # bench's worker re-issues it on every event (as the seed policy did).
        policy = kafka.work / "logs" / f"{run}-policy.toml"
        policy.parent.mkdir(parents=True, exist_ok=True)
        policy.write_text(LATENCY_POLICY)
        worker.env["SESSIONWARDEN_POLICY_FILE"] = str(policy)
        prepared: list[tuple[bytes | None, str, bytes]] = [
            latency_event(i, sessions, run) for i in range(total)]
        causes = {eid: 1 for _k, eid, _v in prepared}
    else:
        prepared, causes = mix_events(src, total, kafka.work)
        total = len(prepared)
    sent: dict[str, float] = {}
    latencies: list[float] = []
    counted_ids = {eid for _k, eid, _v in prepared[counted_from:]}
    want = sum(causes.get(eid, 0) for eid in counted_ids)
    received = 0
    span = [0.0, 0.0]  # first counted send, last counted arrival
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap, acks="all",
                                enable_idempotence=True, linger_ms=LATENCY_LINGER_MS)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap, fetch_max_wait_ms=10,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    try:
        await worker.start()
        await worker.wait_ready()
        await producer.start()
        await consumer.start()
        await consumer._client.force_metadata_update()
        parts = consumer.partitions_for_topic(worker.outputs[0]) or set()
        consumer.assign([TopicPartition(worker.outputs[0], p) for p in parts])
        done = asyncio.Event()

        async def consume() -> None:
            nonlocal received
            while not done.is_set():
                batch = await consumer.getmany(timeout_ms=50)
                now = time.perf_counter()
                for records in batch.values():
                    for rec in records:
                        cid = orjson.loads(rec.value).get("cause_event_id")
                        t = sent.get(cid)
                        if t is not None and cid in counted_ids:
                            latencies.append((now - t) * 1000)
                            received += 1
                            span[1] = now

        reader = asyncio.create_task(consume())
        # Prime: a few events of other sessions, answered before the clock
        # starts, so the worker's one-time costs are not in the figures.
        for i in range(200):
            key, eid, value = latency_event(i, 100, f"{run}p")
            await producer.send(topic, value=value, key=key)
        await producer.flush()
        await _wait_lag_zero(kafka, run, topic, timeout=60.0)
        assert worker.proc is not None
        cpu_start = CpuSnapshot.take(kafka.measured(worker=worker.proc.pid))
        t0 = time.perf_counter()
        seq = 0
        while seq < total:
            due = min(total, int((time.perf_counter() - t0) * events_per_s) + 1)
            while seq < due:
                key, eid, value = prepared[seq]
                sent[eid] = time.perf_counter()
                if seq == counted_from:
                    span[0] = sent[eid]
                await producer.send(topic, value=value, key=key)
                seq += 1
            await asyncio.sleep(0.002)
        offered = rate(total, time.perf_counter() - t0)
        last, stalled_since = -1, time.monotonic()
        while received < want and time.monotonic() - stalled_since < 10:
            if received != last:  # still draining a backlog: keep waiting
                last, stalled_since = received, time.monotonic()
            await asyncio.sleep(0.1)
        done.set()
        await reader
        cpu = cpu_window(cpu_start, CpuSnapshot.take(kafka.measured(worker=worker.proc.pid)),
                         total)
        lat = sorted(latencies)
        return {"workload": src.name if src is not None else "one command per event",
                "offered_events_per_s": events_per_s, "achieved_send_rate": rnd(offered, 0),
                "seconds": seconds, "warmup_s": warmup_s,
                "sessions": sessions if src is None else None,
                "measured_events": total - counted_from, "commands_expected": want,
                "commands_received": received, "missing": want - received,
                "completed_events_per_s": rnd(rate(total - counted_from,
                                                   span[1] - span[0]), 0),
                "latency_ms_p50": rnd(_percentile(lat, 0.50), 1),
                "latency_ms_p90": rnd(_percentile(lat, 0.90), 1),
                "latency_ms_p99": rnd(_percentile(lat, 0.99), 1),
                "latency_ms_max": rnd(lat[-1] if lat else 0.0, 1),
                # From the first paced send until the last command arrived (or the wait
                # gave up), per event sent in that window (warm-up included).
                "cpu_us_per_event": cpu["cpu_us_per_event"],
                "other_cpu_share": cpu["other_cpu_share"],
                "machine_busy_share": cpu["machine_busy_share"]}
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()
        with contextlib.suppress(Exception):
            await producer.stop()
        await worker.stop()
        await kafka.delete_topics(run)


async def bench_memory(kafka: Kafka, warm_src: Path, src: Path, sessions: int,
                       settle_s: float = 3.0) -> dict[str, Any]:
    """Worker RSS growth and state-store size per session baseline.

    The worker starts on an empty topic; a warm-up file of other sessions
    pays the one-time costs (user-agent regexes, RocksDB column families);
    then RSS and the store directory are sampled, the measured file (N
    sessions' full event streams) is produced, and both are sampled again
    once the group's lag is back to zero.
    """
    run = f"bm-{_uid()}"
    topic = f"{run}-in"
    await kafka.create_topic(topic)
    worker = Worker(kafka, run, topic, run)
    try:
        await worker.start()
        await worker.wait_ready()
        for path in (warm_src,):
            await _produce_and_drain(kafka, topic, path, run)
        await asyncio.sleep(settle_s)
        rss0, disk0 = worker.rss(), dir_size(worker.data_dir)
        await _produce_and_drain(kafka, topic, src, run)
        await asyncio.sleep(settle_s)
        rss1, disk1 = worker.rss(), dir_size(worker.data_dir)
        per = (rss1 - rss0) / max(sessions, 1)
        disk_per = (disk1 - disk0) / max(sessions, 1)
        return {"sessions": sessions, "input": src.name,
                "rss_before_bytes": rss0, "rss_after_bytes": rss1,
                "bytes_per_session": rnd(per, 1),
                "mib_per_100k_sessions": rnd(per * 100_000 / 2**20, 1),
                "store_bytes_per_session": rnd(disk_per, 1),
                "store_mib_per_100k_sessions": rnd(disk_per * 100_000 / 2**20, 1)}
    finally:
        await worker.stop()
        await kafka.delete_topics(run)


async def _produce_and_drain(kafka: Kafka, topic: str, src: Path, group: str,
                             timeout: float = 900.0) -> None:
    env = {**os.environ, "SESSIONWARDEN_BROKER": f"kafka://{kafka.bootstrap}"}
    proc = await asyncio.create_subprocess_exec(
        *sessionwarden_cmd(), "produce", str(src), "--topic", topic, "--no-create-topics",
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _out, err = await proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"produce failed: {err.decode()[-2000:]}")
    if await _wait_lag_zero(kafka, group, topic, timeout) is None:
        raise TimeoutError(f"worker did not drain {src.name} in {timeout}s")
