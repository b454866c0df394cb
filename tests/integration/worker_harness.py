"""Helpers for the worker's Kafka tests: real worker processes, output collection,
and the comparison with `sessionwarden replay`.

Why a separate module: every scenario (end to end, crash, two workers,
poison) needs the same three things, and process boundaries matter, so
workers always run as `python -m worker worker` subprocesses.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from worker.enrich import Enricher
from worker.policy_file import load_policy
from worker.replay import replay
from worker.settings import Settings
from worker.signals.tokens import Signer

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
_LIVE: list[WorkerProcess] = []
"""Started worker processes; a timed-out wait dumps their stacks (post-mortem)."""
UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/120.0.0.0 Safari/537.36")


@functools.cache
def signing_key_file() -> Path:
    """One RS256 test key per test session, shared by replay and the workers."""
    from cryptography.hazmat.primitives import serialization  # noqa: PLC0415
    from cryptography.hazmat.primitives.asymmetric import rsa  # noqa: PLC0415

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = Path(tempfile.mkdtemp(prefix="sessionwarden-key-")) / "set-signing.pem"
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def native(event_id: str, session: str, at: str, ip: str, asn: str, kind: str = "login",
           **extra: Any) -> bytes:
    """A native event line; the IdP-supplied ASN makes the ASN binding deterministic."""
    return orjson.dumps({
        "event_id": event_id, "type": kind, "occurred_at": at, "tenant": "acme",
        "session": {"id": session}, "user": {"id": "auth0|7"},
        "request": {"ip": ip, "asn": asn, "user_agent": UA}, **extra})


def login_and_asn_change(session: str) -> tuple[bytes, bytes]:
    """A login (with an org idle timeout: one command) and a later ASN change (a revoke)."""
    login = native(f"{session}-login", session, "2026-11-01T00:00:00.000Z", "81.2.69.142",
                   "AS1221", organization={"id": "org_1",
                                           "metadata": {"idle_session_timeout": "900000"}})
    change = native(f"{session}-change", session, "2026-11-01T00:05:00.000Z",
                    "216.160.83.56", "AS7018", kind="interaction")
    return login, change


def write_lines(path: Path, lines: Iterable[bytes]) -> Path:
    path.write_bytes(b"".join(line.rstrip(b"\n") + b"\n" for line in lines))
    return path


def demo_lines(tmp: Path) -> list[bytes]:
    """The bundled demo log, or the same profile generated into tmp."""
    demo = REPO / "data" / "demo" / "events.jsonl"
    if not demo.is_file():
        demo = tmp / "demo.jsonl"
        subprocess.run([PYTHON, str(REPO / "data" / "generate_events.py"), "--profile", "demo",
                        "--out", str(demo)], check=True, capture_output=True)
    return demo.read_bytes().splitlines()


@dataclass
class Deployment:
    """One isolated set of topics (and consumer group ids) on the shared broker."""

    bootstrap: str
    prefix: str
    partitions: int = 4

    @property
    def topics(self) -> dict[str, str]:
        p = self.prefix
        return {"input": f"{p}-events", "commands": f"{p}-commands", "audit": f"{p}-audit",
                "alerts": f"{p}-alerts", "dlq": f"{p}-events-dlq", "signals": f"{p}-signals",
                "signals_dlq": f"{p}-signals-dlq"}

    def changelog(self, app_id: str) -> str:
        return f"{app_id}-baselines-changelog"

    def env(self, **extra: Any) -> dict[str, str]:
        t = self.topics
        env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONWARDEN_")}
        env.update({
            "SESSIONWARDEN_BROKER": self.bootstrap,
            "SESSIONWARDEN_INPUT_TOPIC": t["input"], "SESSIONWARDEN_COMMANDS_TOPIC": t["commands"],
            "SESSIONWARDEN_AUDIT_TOPIC": t["audit"], "SESSIONWARDEN_ALERTS_TOPIC": t["alerts"],
            "SESSIONWARDEN_DLQ_TOPIC": t["dlq"], "SESSIONWARDEN_SIGNALS_TOPIC": t["signals"],
            "SESSIONWARDEN_SIGNALS_DLQ_TOPIC": t["signals_dlq"],
            "SESSIONWARDEN_SIGNING_KEY_FILE": str(signing_key_file()),
            "SESSIONWARDEN_TOPIC_PARTITIONS": str(self.partitions),
            # Test tuning: fast group joins and failover (NOTES.md), not production values.
            "SESSIONWARDEN_BROKER_SESSION_TIMEOUT": "2",
            "SESSIONWARDEN_BROKER_HEARTBEAT_INTERVAL": "0.5",
            "SESSIONWARDEN_LOG_FORMAT": "json", "SESSIONWARDEN_WEB_HOST": "127.0.0.1",
        })
        env.update({f"SESSIONWARDEN_{k.upper()}": str(v) for k, v in extra.items()})
        return env

    async def produce(self, path: Path) -> dict[str, Any]:
        """`sessionwarden produce FILE` as a subprocess; returns its JSON summary."""
        proc = await asyncio.create_subprocess_exec(
            PYTHON, "-m", "worker", "produce", str(path), "--topic", self.topics["input"],
            cwd=REPO, env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        out, err = await proc.communicate()
        assert proc.returncode == 0, err.decode()
        summary: dict[str, Any] = orjson.loads(out)
        return summary


class WorkerProcess:
    """`python -m worker worker` with its own app id, data dir, web port and log."""

    def __init__(self, deployment: Deployment, app_id: str, data_dir: Path, log: Path,
                 module: str = "worker", extra_env: dict[str, str] | None = None,
                 **settings: Any) -> None:
        self.deployment = deployment
        self.module = module
        self.app_id = app_id
        self.port = free_port()
        self.log = log
        self.env = deployment.env(app_id=app_id, data_dir=data_dir, web_port=self.port,
                                  **settings)
        self.env.update(extra_env or {})
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        with self.log.open("ab") as fh:
            args = ["worker"] if self.module == "worker" else []
            self.proc = subprocess.Popen([PYTHON, "-m", self.module, *args], cwd=REPO,
                                         env=self.env, stdout=fh, stderr=subprocess.STDOUT)
        _LIVE[:] = [w for w in _LIVE if w.proc is not None and w.proc.poll() is None]
        _LIVE.append(self)
        return self

    def dump_stacks(self) -> None:
        """SIGUSR1: mode's Worker logs every thread's and asyncio task's stack."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGUSR1)

    def get(self, path: str) -> tuple[int, bytes]:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}",
                                        timeout=2) as resp:
                return int(resp.status), bytes(resp.read())
        except urllib.error.HTTPError as exc:
            return int(exc.code), bytes(exc.read())
        except OSError:
            return 0, b""

    def health(self) -> tuple[int, dict[str, Any]]:
        status, body = self.get("/health")
        return status, (orjson.loads(body) if body else {})

    def metrics(self) -> str:
        return self.get("/metrics")[1].decode()

    def input_partitions(self) -> set[int]:
        status, body = self.health()
        topic = self.deployment.topics["input"]
        if status != 200:
            return set()
        return {int(a.rsplit(":", 1)[1]) for a in body.get("assigned", ())
                if a.rsplit(":", 1)[0] == topic}

    async def wait_ready(self, timeout: float = 60.0,
                         partitions: Callable[[set[int]], bool] | None = None) -> None:
        """Until /health is 200 (and the input assignment satisfies `partitions`)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.tail()
            status, _body = await asyncio.to_thread(self.health)
            if status == 200 and (partitions is None
                                  or partitions(await asyncio.to_thread(self.input_partitions))):
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"worker {self.app_id} not ready in {timeout}s\n{self.tail()}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 60.0) -> int:
        """SIGTERM and wait: the graceful path (finish batch, commit, leave group)."""
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def tail(self, n: int = 40) -> str:
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(lines[-n:])


@dataclass
class Record:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes
    timestamp: int
    headers: dict[str, bytes]


@dataclass
class Collector:
    """Reads topics from the beginning in the background (no consumer group)."""

    bootstrap: str
    topics: dict[str, int]
    records: dict[str, list[Record]] = field(default_factory=lambda: defaultdict(list))
    last_arrival: float = 0.0
    _consumer: Any = None
    _task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Collector:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap,
                                          enable_auto_commit=False,
                                          max_partition_fetch_bytes=8 << 20,
                                          fetch_max_bytes=16 << 20)
        await self._consumer.start()
        # Never ask for missing topics: the test broker auto-creates them with
        # one partition, which would break the worker's co-partitioning.
        missing = set(self.topics) - set(await self._consumer.topics())
        if missing:
            await self._consumer.stop()
            raise AssertionError(f"collector started before the topics exist: {missing}")
        tps = [TopicPartition(t, p) for t, n in self.topics.items() for p in range(n)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            batch = await self._consumer.getmany(timeout_ms=100)
            for tp, msgs in batch.items():
                for m in msgs:
                    self.records[tp.topic].append(Record(
                        tp.topic, tp.partition, m.offset, m.key, m.value or b"", m.timestamp,
                        {k: bytes(v) for k, v in (m.headers or ())}))
                    self.last_arrival = time.monotonic()

    async def __aexit__(self, *exc: object) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()

    def count(self, topic: str) -> int:
        return len(self.records[topic])

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = 120.0,
                       what: str = "condition") -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                live = [w for w in _LIVE if w.proc is not None and w.proc.poll() is None]
                for w in live:
                    w.dump_stacks()
                if live:
                    await asyncio.sleep(2)  # let them write the dump into their logs
                raise AssertionError(f"timed out after {timeout}s waiting for {what}: "
                                     f"{ {t: len(r) for t, r in self.records.items()} }")
            await asyncio.sleep(0.05)

    async def settle(self, quiet: float = 1.0) -> None:
        """Wait until nothing arrived for `quiet` seconds."""
        while time.monotonic() - self.last_arrival < quiet:
            await asyncio.sleep(0.1)


@dataclass
class Expected:
    """What `sessionwarden replay` writes for the same input."""

    commands: list[bytes]
    audit: list[bytes]
    alerts: list[bytes]
    dead: int
    summary: dict[str, Any]
    signals: list[bytes]

    @property
    def command_ids(self) -> list[str]:
        return [orjson.loads(c)["command_id"] for c in self.commands]


def replay_expected(path: Path, out: Path) -> Expected:
    """`sessionwarden replay` of the file, signing with the workers' key."""
    settings = Settings(signing_key_file=signing_key_file())
    summary = replay([path], out, load_policy(settings.policy_file),
                     Enricher.from_settings(settings),
                     signer=Signer.from_settings(settings, ephemeral_ok=False))

    def lines(name: str) -> list[bytes]:
        return (out / name).read_bytes().splitlines()

    return Expected(lines("commands.jsonl"), lines("audit.jsonl"), lines("alerts.jsonl"),
                    len(lines("dead_letter.jsonl")), summary, lines("signals.jsonl"))


def outputs_complete(c: Collector, d: Deployment, e: Expected) -> Callable[[], bool]:
    """All expected outputs have arrived (re-deliveries may add more)."""
    t = d.topics

    def done() -> bool:
        ids = {orjson.loads(r.value)["command_id"] for r in c.records[t["commands"]]}
        return (len(ids) >= len(set(e.command_ids)) and c.count(t["audit"]) >= len(e.audit)
                and c.count(t["alerts"]) >= len(e.alerts) and c.count(t["dlq"]) >= e.dead
                and c.count(t["signals"]) >= len(e.signals))
    return done


def assert_same_decisions(c: Collector, d: Deployment, e: Expected, *,
                          redelivered: bool = False) -> dict[str, int]:
    """Live outputs == replay outputs; with `redelivered`, duplicates must be identical."""
    t = d.topics
    commands = sorted(c.records[t["commands"]], key=lambda r: (r.partition, r.offset))
    contents: dict[str, set[bytes]] = defaultdict(set)
    for r in commands:
        contents[orjson.loads(r.value)["command_id"]].add(r.value)
    differing = {cid for cid, values in contents.items() if len(values) > 1}
    assert not differing, f"re-sent commands with different content: {differing}"
    got = {(cid, v) for cid, vs in contents.items() for v in vs}
    want = {(orjson.loads(v)["command_id"], v) for v in e.commands}
    if got != want:
        sessions = {orjson.loads(v)["session_id"] for _c, v in got ^ want}

        def brief(v: bytes) -> tuple[str, str, str]:
            x = orjson.loads(v)
            return x["type"], x["cause_event_id"], x["issued_at"]
        detail = {sid: {"live": [(r.partition, r.offset, *brief(r.value)) for r in commands
                                 if orjson.loads(r.value)["session_id"] == sid],
                        "replay": [brief(v) for v in e.commands
                                   if orjson.loads(v)["session_id"] == sid]}
                  for sid in sorted(sessions)[:3]}
        raise AssertionError(f"missing {len(want - got)}, unexpected {len(got - want)}: {detail}")
    # Per session: the order of first appearance is replay's order.
    live: dict[str, list[str]] = defaultdict(list)
    for r in commands:
        cmd = orjson.loads(r.value)
        assert r.key == cmd["session_id"].encode()
        if cmd["command_id"] not in live[cmd["session_id"]]:
            live[cmd["session_id"]].append(cmd["command_id"])
    want: dict[str, list[str]] = defaultdict(list)
    for v in e.commands:
        cmd = orjson.loads(v)
        want[cmd["session_id"]].append(cmd["command_id"])
    assert live == want
    audit = [r.value for r in c.records[t["audit"]]]
    alerts = [r.value for r in c.records[t["alerts"]]]
    signals = [r.value for r in c.records[t["signals"]]]
    for r in c.records[t["signals"]]:  # keyed by session, like every output
        assert r.key == orjson.loads(r.value)["session_id"].encode()
    dlq = c.records[t["dlq"]]
    if redelivered:
        assert set(audit) == set(e.audit) and set(alerts) == set(e.alerts)
        assert set(signals) == set(e.signals)
        origins = {(r.headers["sessionwarden.origin.partition"],
                    r.headers["sessionwarden.origin.offset"]) for r in dlq}
        assert len(origins) == e.dead
    else:
        assert len(commands) == len(e.commands), "no duplicates without a failure"
        assert Counter(audit) == Counter(e.audit) and Counter(alerts) == Counter(e.alerts)
        assert Counter(signals) == Counter(e.signals), "signals: same bytes as replay"
        assert len(dlq) == e.dead
    return {"commands": len(commands), "distinct_commands": len(contents),
            "duplicates": len(commands) - len(contents), "signals": len(signals)}
