"""`python -m bench.enforce_bench`: the enforcer's targets, on a real Kafka and a real Keycloak.

Starts its own single-node Kafka (scripts/kafka_local.py) and Keycloak
(scripts/keycloak_local.py) unless SESSIONWARDEN_TEST_BOOTSTRAP /
SESSIONWARDEN_TEST_KEYCLOAK point at running ones, and measures:

1. hijack -> session dead at Keycloak (p50, p99): every component with its
   default settings -- `sessionwarden ingest keycloak` polling every second,
   the worker, the enforcer. Each sample is a real session: a login from
   89.160.20.112, then (the hijack) a refresh from 216.160.83.56; the clock
   starts just before the hijacker's refresh request and stops at the
   result's `at`, taken right after Keycloak answered the DELETE (both
   clocks are this machine's). Hijacks come one every `--gap` seconds. The
   median of each stage is reported too: Keycloak event -> input record
   (ingest), input -> command (worker), command -> result (enforcer).
2. commands applied per second against Keycloak, default concurrency (8 per
   target), rate limit lifted (the default rail caps revokes at 20/s on
   purpose) and breaker off: N revoke commands for N live sessions are
   queued, then the enforcer starts; rate = N / (ready -> last result).
3. the kill -9 drill (bench/enforce_drill.py): N commands, default batch
   size, the enforcer killed once a third of the sessions' DELETEs went
   through the counting proxy, restarted, then checked: zero lost, zero
   duplicate results, zero double-applied. A control run by an enforcer
   without memory (fresh group and state topic) must fail the same check.

Writes bench/out/enforce.json and prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.common import OUT, PY, REPO, free_port, load_kafka_local, log
from bench.enforce_drill import CountingProxy, check_drill, revoke_command

HOME_IP = "89.160.20.112"
HIJACK_IP = "216.160.83.56"
PARTITIONS = 4


def load_keycloak_local() -> Any:
    import importlib.util  # noqa: PLC0415

    name = "sessionwarden_keycloak_local"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / "keycloak_local.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(orjson.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


class Topics:
    """Reads topics from the beginning in the background."""

    def __init__(self, bootstrap: str, topics: list[str]) -> None:
        self.bootstrap = bootstrap
        self.topics = topics
        self.records: dict[str, list[Any]] = defaultdict(list)
        self._consumer: Any = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Topics:
        self._consumer = AIOKafkaConsumer(bootstrap_servers=self.bootstrap,
                                          enable_auto_commit=False)
        await self._consumer.start()
        tps = [TopicPartition(t, p) for t in self.topics for p in range(PARTITIONS)]
        self._consumer.assign(tps)
        await self._consumer.seek_to_beginning(*tps)
        self._task = asyncio.create_task(self._run())
        return self

    async def _run(self) -> None:
        while True:
            for tp, msgs in (await self._consumer.getmany(timeout_ms=50)).items():
                self.records[tp.topic].extend(msgs)

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        await self._consumer.stop()

    def values(self, topic: str) -> list[dict[str, Any]]:
        return [orjson.loads(m.value) for m in self.records[topic]]


class Run:
    """One isolated deployment (topic prefix, groups) on the shared broker."""

    def __init__(self, bootstrap: str, work: Path, name: str) -> None:
        self.bootstrap = bootstrap
        self.prefix = f"bench-{name}-{uuid.uuid4().hex[:6]}"
        self.work = work / self.prefix
        self.work.mkdir(parents=True)
        p = self.prefix
        self.topics = {"input": f"{p}-events", "commands": f"{p}-commands",
                       "audit": f"{p}-audit", "alerts": f"{p}-alerts", "dlq": f"{p}-dlq",
                       "results": f"{p}-enforcement", "state": f"{p}-enforcement-state"}
        self.procs: list[subprocess.Popen[bytes]] = []

    def env(self, **extra: str) -> dict[str, str]:
        t = self.topics
        env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONWARDEN_")}
        env.update({
            "SESSIONWARDEN_BROKER": self.bootstrap, "SESSIONWARDEN_INPUT_TOPIC": t["input"],
            "SESSIONWARDEN_COMMANDS_TOPIC": t["commands"], "SESSIONWARDEN_AUDIT_TOPIC": t["audit"],
            "SESSIONWARDEN_ALERTS_TOPIC": t["alerts"], "SESSIONWARDEN_DLQ_TOPIC": t["dlq"],
            "SESSIONWARDEN_RESULTS_TOPIC": t["results"],
            "SESSIONWARDEN_ENFORCE_STATE_TOPIC": t["state"],
            "SESSIONWARDEN_TOPIC_PARTITIONS": str(PARTITIONS), "SESSIONWARDEN_LOG_FORMAT": "json",
            "SESSIONWARDEN_APP_ID": f"{self.prefix}-app",
            "SESSIONWARDEN_ENFORCE_GROUP": f"{self.prefix}-enforcer",
            "SESSIONWARDEN_DATA_DIR": str(self.work / "state"),
            "SESSIONWARDEN_WEB_HOST": "127.0.0.1", "SESSIONWARDEN_WEB_PORT": str(free_port()),
            "SESSIONWARDEN_ENFORCE_WEB_PORT": str(free_port())})
        env.update(extra)
        return env

    def spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        with (self.work / f"{name}.log").open("ab") as fh:
            proc = subprocess.Popen([PY, "-m", "worker", *args], cwd=REPO, env=env, stdout=fh,
                                    stderr=subprocess.STDOUT)
        self.procs.append(proc)
        return proc

    async def wait_http(self, port: str, timeout: float = 90.0) -> None:
        import urllib.request  # noqa: PLC0415

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError), urllib.request.urlopen(
                    f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return
            await asyncio.sleep(0.05)
        raise TimeoutError(f"no /health on port {port}")

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(30)
            if proc.poll() is None:
                proc.kill()


def write_files(run: Run, realm: str, base_url: str, policy: str) -> tuple[Path, Path]:
    targets = run.work / "targets.toml"
    targets.write_text(f'[tenants."{realm}"]\nkind = "keycloak"\nbase_url = "{base_url}"\n'
                       f'realm = "{realm}"\nclient_id = "sessionwarden-enforcer"\n'
                       'client_secret_env = "BENCH_KC_SECRET"\n')
    path = run.work / "policy.toml"
    path.write_text(policy)
    return targets, path


async def produce(bootstrap: str, topic: str, commands: list[dict[str, Any]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all", linger_ms=5)
    await producer.start()
    try:
        for cmd in commands:
            await producer.send(topic, orjson.dumps(cmd), key=cmd["session_id"].encode())
        await producer.flush()
    finally:
        await producer.stop()


async def create(bootstrap: str, names: list[str], compacted: str | None = None) -> None:
    from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: PLC0415

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, PARTITIONS, 1, topic_configs={
            "cleanup.policy": "compact"} if n == compacted else {}) for n in names])
        await asyncio.sleep(1.0)
    finally:
        await admin.close()


def login_many(kit: Any, user: str, count: int, ip: str) -> list[dict[str, Any]]:
    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(lambda _i: kit.login(user, ip), range(count)))


# -- 1. hijack latency ------------------------------------------------------------


async def bench_hijack(bootstrap: str, keycloak: str, work: Path, hijacks: int,
                       gap: float) -> dict[str, Any]:
    kl = load_keycloak_local()
    realm = f"hijack-{uuid.uuid4().hex[:6]}"
    kit = await asyncio.to_thread(lambda: kl.RealmKit(keycloak, realm).create(users=["victim"]))
    run = Run(bootstrap, work, "hijack")
    policy = ("[detectors.asn_binding]\naction = \"revoke\"\n[detectors.ua_drift]\n"
              "action = \"off\"\n"
              f"[enforcement.tenants.\"{realm}\".breaker]\nenabled = false\n")
    targets, policy_path = write_files(run, realm, keycloak, policy)
    env = run.env(SESSIONWARDEN_POLICY_FILE=str(policy_path), BENCH_KC_SECRET=kit.enforcer_secret,
                  SESSIONWARDEN_KEYCLOAK_CLIENT_SECRET=kit.enforcer_secret)
    try:
        run.spawn("worker", ["worker"], env)
        await run.wait_http(env["SESSIONWARDEN_WEB_PORT"])
        run.spawn("enforcer", ["enforce", "--targets", str(targets)], env)
        await run.wait_http(env["SESSIONWARDEN_ENFORCE_WEB_PORT"])
        run.spawn("ingest", ["ingest", "keycloak", "--url", keycloak, "--realm", realm,
                             "--client-id", "sessionwarden-enforcer"], env)
        t = run.topics
        async with Topics(bootstrap, [t["input"], t["commands"], t["results"]]) as topics:
            logins = await asyncio.to_thread(login_many, kit, "victim", hijacks, HOME_IP)
            sids = [str(x["session_state"]) for x in logins]
            await wait_for(lambda: len(topics.records[t["input"]]) >= hijacks, 60, "logins in")
            started: dict[str, float] = {}
            stolen: dict[str, str] = {}
            for login, sid in zip(logins, sids, strict=True):
                started[sid] = time.time()
                status, body = await asyncio.to_thread(kit.refresh, login["refresh_token"],
                                                       HIJACK_IP)
                assert status == 200, body
                stolen[sid] = str(body["refresh_token"])
                await asyncio.sleep(gap)
            await wait_for(lambda: len(topics.records[t["results"]]) >= hijacks, 120,
                           "a result per hijack")
            results = {r["session_id"]: r for r in topics.values(t["results"])}
            rejected = 0
            for token in stolen.values():
                status, body = await asyncio.to_thread(kit.refresh, token, HIJACK_IP)
                rejected += status == 400 and body.get("error_description") == \
                    "Session not active"
            latency = [parse_at(results[s]["at"]) - started[s] for s in sids]
            stages = stage_medians(topics, t, sids)
    finally:
        run.stop()
    assert all(results[s]["outcome"] == "applied" for s in sids), "every hijack revoked"
    return {"hijacks": hijacks, "gap_s": gap, "p50_s": round(pct(latency, 50), 3),
            "p99_s": round(pct(latency, 99), 3), "max_s": round(max(latency), 3),
            "min_s": round(min(latency), 3), "stolen_tokens_rejected": rejected,
            "stage_medians_s": stages,
            "settings": "defaults: ingest poll 1 s, worker batch timeout 0.05 s, enforcer "
                        "getmany 0.2 s"}


def parse_at(text: str) -> float:
    from datetime import datetime  # noqa: PLC0415

    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def stage_medians(topics: Topics, t: dict[str, str], sids: list[str]) -> dict[str, float]:
    """Median seconds per stage for the hijacking (REFRESH_TOKEN) events."""
    event_time: dict[str, float] = {}
    input_ts: dict[str, float] = {}
    for m in topics.records[t["input"]]:
        e = orjson.loads(m.value)
        if e.get("type") == "REFRESH_TOKEN":
            event_time[e["sessionId"]] = e["time"] / 1000
            input_ts[e["sessionId"]] = m.timestamp / 1000
    command_ts = {orjson.loads(m.value)["session_id"]: m.timestamp / 1000
                  for m in topics.records[t["commands"]]}
    result_at = {r["session_id"]: parse_at(r["at"]) for r in topics.values(t["results"])}
    stages = {"keycloak_event_to_input": [input_ts[s] - event_time[s] for s in sids],
              "input_to_command": [command_ts[s] - input_ts[s] for s in sids],
              "command_to_result": [result_at[s] - command_ts[s] for s in sids]}
    return {k: round(statistics.median(v), 3) for k, v in stages.items()}


async def wait_for(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


# -- 2. throughput ----------------------------------------------------------------


async def bench_throughput(bootstrap: str, keycloak: str, work: Path,
                           count: int) -> dict[str, Any]:
    kl = load_keycloak_local()
    realm = f"tput-{uuid.uuid4().hex[:6]}"
    kit = await asyncio.to_thread(lambda: kl.RealmKit(keycloak, realm).create(users=["victim"]))
    run = Run(bootstrap, work, "tput")
    policy = ("[enforcement]\nrevocations_per_second = 100000\nrevocation_burst = 100000\n"
              "[enforcement.breaker]\nenabled = false\n")
    targets, policy_path = write_files(run, realm, keycloak, policy)
    env = run.env(BENCH_KC_SECRET=kit.enforcer_secret)
    t = run.topics
    logins = await asyncio.to_thread(login_many, kit, "victim", count, HOME_IP)
    commands = [revoke_command(i, realm, str(x["session_state"]),
                               claims(str(x["access_token"]))["sub"])
                for i, x in enumerate(logins)]
    await create(bootstrap, [t["commands"], t["results"], t["state"]], compacted=t["state"])
    await produce(bootstrap, t["commands"], commands)
    try:
        async with Topics(bootstrap, [t["results"]]) as topics:
            started = time.monotonic()
            run.spawn("enforcer", ["enforce", "--targets", str(targets), "--policy",
                                   str(policy_path)], env)
            await run.wait_http(env["SESSIONWARDEN_ENFORCE_WEB_PORT"])
            ready = time.monotonic()
            await wait_for(lambda: len(topics.records[t["results"]]) >= count, 300,
                           "all results")
            done = time.monotonic()
            outcomes = [r["outcome"] for r in topics.values(t["results"])]
    finally:
        run.stop()
    seconds = done - ready
    return {"commands": count, "concurrency": 8, "seconds_ready_to_last_result":
            round(seconds, 3), "commands_per_s": round(count / seconds, 1),
            "keycloak_requests_per_s": round(2 * count / seconds, 1),
            "enforcer_start_to_ready_s": round(ready - started, 3),
            "applied": outcomes.count("applied"),
            "note": "each revoke = DELETE of the session and of its offline twin "
                    "(preserve_refresh_tokens false): two Keycloak requests"}


# -- 3. kill -9 drill -------------------------------------------------------------


async def bench_drill(bootstrap: str, keycloak: str, work: Path, count: int) -> dict[str, Any]:
    kl = load_keycloak_local()
    realm = f"drill-{uuid.uuid4().hex[:6]}"
    kit = await asyncio.to_thread(lambda: kl.RealmKit(keycloak, realm).create(users=["victim"]))
    run = Run(bootstrap, work, "drill")
    proxy = CountingProxy(keycloak)
    await proxy.start()
    policy = ("[enforcement]\nrevocations_per_second = 100000\nrevocation_burst = 100000\n"
              "[enforcement.breaker]\nenabled = false\n")
    targets, policy_path = write_files(run, realm, proxy.url, policy)
    env = run.env(BENCH_KC_SECRET=kit.enforcer_secret)
    t = run.topics
    logins = await asyncio.to_thread(login_many, kit, "victim", count, HOME_IP)
    commands = [revoke_command(i, realm, str(x["session_state"]),
                               claims(str(x["access_token"]))["sub"])
                for i, x in enumerate(logins)]
    await create(bootstrap, [t["commands"], t["results"], t["state"]], compacted=t["state"])
    await produce(bootstrap, t["commands"], commands)
    args = ["enforce", "--targets", str(targets), "--policy", str(policy_path)]
    sids = {c["session_id"] for c in commands}
    try:
        async with Topics(bootstrap, [t["results"]]) as topics:
            first = run.spawn("enforcer-a", args, env)
            await wait_for(lambda: sum(1 for s in sids if proxy.revoking_calls(s))
                           >= count // 3, 300, "a third of the DELETEs")
            first.kill()
            first.wait()
            sent_at_kill = sum(1 for s in sids if proxy.revoking_calls(s))
            results_at_kill = len(topics.records[t["results"]])
            run.spawn("enforcer-b", args, env | {"SESSIONWARDEN_ENFORCE_WEB_PORT":
                                                 str(free_port())})
            wanted = {c["command_id"] for c in commands}
            await wait_for(lambda: {r["command_id"] for r in topics.values(t["results"])}
                           >= wanted, 300, "all results after the restart")
            await asyncio.sleep(2.0)
            report = check_drill(commands, topics.values(t["results"]), proxy.calls)
            # Control: an enforcer without memory must fail the same check.
            run.spawn("enforcer-amnesiac", args, env | {
                "SESSIONWARDEN_ENFORCE_GROUP": f"{run.prefix}-amnesiac",
                "SESSIONWARDEN_ENFORCE_STATE_TOPIC": f"{run.prefix}-amnesiac-state",
                "SESSIONWARDEN_ENFORCE_WEB_PORT": str(free_port())})
            await wait_for(lambda: len(topics.records[t["results"]]) >= report.results + count,
                           300, "the control run's results")
            control = check_drill(commands, topics.values(t["results"]), proxy.calls)
    finally:
        run.stop()
        await proxy.stop()
    return {"commands": count, "revoking_deletes_at_kill": sent_at_kill,
            "results_at_kill": results_at_kill, "after_restart": report.as_dict(),
            "passed": report.ok,
            "control_without_memory": {"double_applied": len(control.double_applied),
                                       "duplicate_results": len(control.duplicate_results),
                                       "passed": control.ok}}


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    work = OUT / "enforce"
    work.mkdir(parents=True, exist_ok=True)
    stack = contextlib.ExitStack()
    bootstrap = os.environ.get("SESSIONWARDEN_TEST_BOOTSTRAP", "").strip()
    keycloak = os.environ.get("SESSIONWARDEN_TEST_KEYCLOAK", "").strip().rstrip("/")
    try:
        if not bootstrap:
            kafka = load_kafka_local().LocalKafka(work / f"kafka-{uuid.uuid4().hex[:6]}",
                                                  die_with_parent=True)
            bootstrap = kafka.start(timeout=120)
            stack.callback(kafka.stop)
            log(f"kafka at {bootstrap}")
        if not keycloak:
            server = load_keycloak_local().LocalKeycloak(
                work / f"keycloak-{uuid.uuid4().hex[:6]}", die_with_parent=True)
            keycloak = server.start()
            stack.callback(server.stop)
            log(f"keycloak at {keycloak} (ready in {server.startup_seconds:.1f}s)")
        out: dict[str, Any] = {"when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                               "cpus": os.cpu_count()}
        if args.hijacks:
            log(f"hijack latency: {args.hijacks} hijacks")
            out["hijack"] = await bench_hijack(bootstrap, keycloak, work, args.hijacks, args.gap)
            log(f"  {out['hijack']}")
        if args.throughput:
            log(f"throughput: {args.throughput} revokes")
            out["throughput"] = await bench_throughput(bootstrap, keycloak, work,
                                                       args.throughput)
            log(f"  {out['throughput']}")
        if args.drill:
            log(f"kill -9 drill: {args.drill} revokes")
            out["drill"] = await bench_drill(bootstrap, keycloak, work, args.drill)
            log(f"  {out['drill']}")
        return out
    finally:
        stack.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hijacks", type=int, default=100)
    p.add_argument("--gap", type=float, default=0.3, help="seconds between hijacks")
    p.add_argument("--throughput", type=int, default=1000)
    p.add_argument("--drill", type=int, default=600)
    p.add_argument("--out", type=Path, default=OUT / "enforce.json")
    args = p.parse_args()
    result = asyncio.run(main_async(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode())
    drill = result.get("drill")
    return 0 if drill is None or (drill["passed"] and not
                                  drill["control_without_memory"]["passed"]) else 1


if __name__ == "__main__":
    sys.exit(main())
