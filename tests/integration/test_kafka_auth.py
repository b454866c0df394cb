"""Kafka authentication on a real secured broker (issue 8, item 7).

Why: managed Kafka services accept only authenticated clients, and the
failure modes (a rejected certificate, password or token) only show against
a broker that really checks them. One secured broker per session
(`tests/kafka_auth_plugin.py`) serves every test here: an mTLS listener, a
SASL_SSL listener with SCRAM-SHA-512 and PLAIN, and a SASL_SSL OAUTHBEARER
listener validating JWTs against the JWKS of a loopback OAuth server.

For OAUTHBEARER (the built-in `oidc` provider), mTLS and SCRAM a real
`sessionwarden worker` subprocess, logging at DEBUG, consumes events sent by
`sessionwarden produce` and publishes exactly what replay decides; its log is
then searched for the secrets. Misconfigurations must stop `produce` and the
worker with exit 2 and one line, quickly, never a traceback or a hang.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from tests.integration.worker_harness import (
    PYTHON,
    REPO,
    Collector,
    Deployment,
    WorkerProcess,
    assert_same_decisions,
    login_and_asn_change,
    outputs_complete,
    replay_expected,
    write_lines,
)
from tests.secure_kafka import SecureKafka
from tests.token_providers import TOKEN_ENV
from worker.cli import main
from worker.kafka.client import aiokafka_security
from worker.kafka.preflight import check_login
from worker.settings import Settings

pytestmark = [pytest.mark.kafka]

NEGATIVE_DEADLINE = 30.0
"""A rejected login must end well before any client retry loop would (seconds)."""


def oauth_env(sk: SecureKafka, **over: str) -> dict[str, str]:
    env = {"SECURITY_PROTOCOL": "SASL_SSL", "SASL_MECHANISM": "OAUTHBEARER",
           "SSL_CAFILE": str(sk.pki.ca_cert), "SASL_OAUTH_TOKEN_PROVIDER": "oidc",
           "SASL_OAUTH_TOKEN_URL": sk.oauth_server.token_url,
           "SASL_OAUTH_CLIENT_ID": sk.client_id, "SASL_OAUTH_CLIENT_SECRET": sk.client_secret,
           "SASL_OAUTH_SCOPE": "kafka.events",
           "SASL_OAUTH_EXTENSIONS": "logicalCluster=lkc-test,identityPoolId=pool-test"}
    return {f"SESSIONWARDEN_{k}": v for k, v in {**env, **over}.items()}


def mtls_env(sk: SecureKafka, **over: str) -> dict[str, str]:
    env = {"SECURITY_PROTOCOL": "SSL", "SSL_CAFILE": str(sk.pki.ca_cert),
           "SSL_CERTFILE": str(sk.pki.client_cert), "SSL_KEYFILE": str(sk.pki.client_key),
           "SSL_KEYFILE_PASSWORD": sk.pki.key_password}
    return {f"SESSIONWARDEN_{k}": v for k, v in {**env, **over}.items()}


def scram_env(sk: SecureKafka, **over: str) -> dict[str, str]:
    env = {"SECURITY_PROTOCOL": "SASL_SSL", "SASL_MECHANISM": "SCRAM-SHA-512",
           "SSL_CAFILE": str(sk.pki.ca_cert), "SASL_USERNAME": sk.scram_user,
           "SASL_PASSWORD": sk.scram_password}
    return {f"SESSIONWARDEN_{k}": v for k, v in {**env, **over}.items()}


def settings_of(env: dict[str, str], broker: str) -> Settings:
    fields = {k.removeprefix("SESSIONWARDEN_").lower(): v for k, v in env.items()}
    return Settings(broker=broker, **fields)


@dataclass
class SecuredDeployment(Deployment):
    """A `Deployment` whose worker and `produce` authenticate with `security`."""

    security: dict[str, str] = field(default_factory=dict)

    def env(self, **extra: Any) -> dict[str, str]:
        env = super().env()
        env.update(self.security)
        env.update({f"SESSIONWARDEN_{k.upper()}": str(v) for k, v in extra.items()})
        return env


@dataclass
class CliRun:
    returncode: int
    stdout: str
    stderr: str
    seconds: float


async def run_cli(args: list[str], env: dict[str, str], timeout: float = 120.0) -> CliRun:
    started = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        PYTHON, "-m", "worker", *args, cwd=REPO, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise AssertionError(
            f"sessionwarden {' '.join(args)} still running after {timeout}s") from None
    return CliRun(proc.returncode or 0, out.decode(errors="replace"),
                  err.decode(errors="replace"), time.monotonic() - started)


def events_file(tmp_path: Path, *sessions: str) -> Path:
    return write_lines(tmp_path / "events.jsonl",
                       [line for s in sessions for line in login_and_asn_change(s)])


def secrets_of(sk: SecureKafka) -> dict[str, str]:
    return {"oauth client secret": sk.client_secret, "SCRAM password": sk.scram_password,
            "key password": sk.pki.key_password}


def assert_no_secrets(text: str, sk: SecureKafka, where: str) -> None:
    for name, value in secrets_of(sk).items():
        assert value not in text, f"the {name} appears in {where}"
    for grant in sk.oauth_server.grants:  # an access token is a credential too
        assert grant["token"][:60] not in text, f"an OAuth access token appears in {where}"


async def worker_round_trip(sk: SecureKafka, security: dict[str, str], bootstrap: str,
                            prefix: str, tmp_path: Path) -> str:
    """Worker (DEBUG logs) + produce over `security`; same decisions as replay; its log.

    `produce` runs while the worker starts (both create the topics; the worker
    reads from the earliest offset), which keeps each scenario short.
    """
    d = SecuredDeployment(bootstrap, prefix, partitions=2, security=security)
    source = events_file(tmp_path, f"{prefix}-a", f"{prefix}-b")
    worker = WorkerProcess(d, f"{prefix}-app", tmp_path / "state", tmp_path / "worker.log",
                           log_level="DEBUG", store="memory://").start()
    try:
        producing = asyncio.create_task(
            run_cli(["produce", str(source), "--topic", d.topics["input"]], d.env()))
        expected = replay_expected(source, tmp_path / "replay")
        assert expected.commands, "the input must produce commands"
        run = await producing
        assert run.returncode == 0, run.stderr
        assert orjson.loads(run.stdout)["messages_sent"] == len(source.read_bytes().splitlines())
        assert_no_secrets(run.stdout + run.stderr, sk, "produce's output")
        await worker.wait_ready(90)
        topics = dict.fromkeys(d.topics.values(), d.partitions)
        async with Collector(sk.plaintext, topics) as c:  # read back on the PLAINTEXT listener
            await c.wait_for(outputs_complete(c, d, expected), timeout=90,
                             what="the worker's outputs")
            await c.settle(0.5)
            assert_same_decisions(c, d, expected)
    finally:
        code = worker.terminate()
    log = worker.log.read_text(errors="replace")
    assert code == 0, worker.tail()
    assert '"level":"DEBUG"' in log and "Request to" in log, "the worker did not log at DEBUG"
    return log


async def test_oauthbearer_oidc_worker_and_produce(secure_kafka: SecureKafka,
                                                   unique_topic_prefix: str,
                                                   tmp_path: Path) -> None:
    """Built-in `oidc`: client credentials -> JWT -> broker validates it with the JWKS."""
    sk = secure_kafka
    grants_before = len(sk.oauth_server.grants)
    log = await worker_round_trip(sk, oauth_env(sk), sk.oauth, unique_topic_prefix, tmp_path)
    grants = sk.oauth_server.grants[grants_before:]
    assert grants, "no token was requested"
    assert all(g["client_id"] == sk.client_id and g["basic_auth"] for g in grants)
    assert all(g["form"] == {"grant_type": "client_credentials", "scope": "kafka.events"}
               for g in grants)
    # One token per process serves every client (admin, consumer thread, producers):
    # the worker and produce fetched one each, the preflight included.
    assert len(grants) == 2
    assert "obtained an OAuth token" in log
    assert "SaslAuthenticateRequest(<redacted>)" in log  # the DEBUG request log was redacted
    assert_no_secrets(log, sk, "the worker's DEBUG log")


async def test_mtls_worker_and_produce(secure_kafka: SecureKafka, unique_topic_prefix: str,
                                       tmp_path: Path) -> None:
    """Client certificate with a password-protected key on a listener that requires one."""
    sk = secure_kafka
    log = await worker_round_trip(sk, mtls_env(sk), sk.mtls, unique_topic_prefix, tmp_path)
    assert '"security_protocol":"SSL"' in log  # the preflight's line: mTLS was checked
    assert_no_secrets(log, sk, "the worker's DEBUG log")


async def test_scram_tls_worker_and_produce(secure_kafka: SecureKafka, unique_topic_prefix: str,
                                            tmp_path: Path) -> None:
    """SCRAM-SHA-512 over TLS, the path that already worked: kept under test."""
    sk = secure_kafka
    log = await worker_round_trip(sk, scram_env(sk), sk.scram, unique_topic_prefix, tmp_path)
    assert f"Authenticated as {sk.scram_user} via SCRAM-SHA-512" in log
    assert_no_secrets(log, sk, "the worker's DEBUG log")


async def test_scram_produce_then_consume_with_the_same_mapping(
        secure_kafka: SecureKafka, unique_topic_prefix: str, tmp_path: Path) -> None:
    """`produce` over SCRAM/TLS, read back by a consumer built from `aiokafka_security`."""
    sk = secure_kafka
    env = {**SecuredDeployment(sk.scram, unique_topic_prefix, security=scram_env(sk)).env()}
    source = events_file(tmp_path, f"{unique_topic_prefix}-s")
    topic = f"{unique_topic_prefix}-events"
    run = await run_cli(["produce", str(source), "--topic", topic, "--partitions", "1"], env)
    assert run.returncode == 0, run.stderr
    sent = source.read_bytes().splitlines()
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=sk.scram,
                                auto_offset_reset="earliest", enable_auto_commit=False,
                                **aiokafka_security(settings_of(scram_env(sk), sk.scram)))
    await consumer.start()
    try:
        got: list[bytes] = []
        deadline = time.monotonic() + 30
        while len(got) < len(sent) and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            got += [m.value for msgs in batch.values() for m in msgs]
    finally:
        await consumer.stop()
    assert got == sent


async def test_user_token_provider_module_attribute(secure_kafka: SecureKafka,
                                                    unique_topic_prefix: str,
                                                    tmp_path: Path) -> None:
    """`module:attribute` names the user's own AbstractTokenProvider, imported at start."""
    sk = secure_kafka
    status, body = sk.oauth_server.grant({"grant_type": "client_credentials",
                                          "client_id": sk.client_id,
                                          "client_secret": sk.client_secret}, None)
    assert status == 200
    env = SecuredDeployment(sk.oauth, unique_topic_prefix, security=oauth_env(
        sk, SASL_OAUTH_TOKEN_PROVIDER="tests.token_providers:make_provider",
        SASL_OAUTH_EXTENSIONS="")).env()
    env[TOKEN_ENV] = body["access_token"]
    run = await run_cli(["produce", str(events_file(tmp_path, "u-1")), "--topic",
                         f"{unique_topic_prefix}-events"], env)
    assert run.returncode == 0, run.stderr
    assert orjson.loads(run.stdout)["messages_sent"] == 2


async def test_sasl_plain_password_is_redacted_from_aiokafka_debug_log(
        secure_kafka: SecureKafka, unique_topic_prefix: str,
        caplog: pytest.LogCaptureFixture) -> None:
    """aiokafka logs the first 100 bytes of SASL/PLAIN's request -- the password -- at DEBUG."""
    sk = secure_kafka
    settings = settings_of(scram_env(sk, SASL_MECHANISM="PLAIN"), sk.scram)
    caplog.set_level(logging.DEBUG, logger="aiokafka")
    await check_login(settings)
    producer = AIOKafkaProducer(bootstrap_servers=sk.scram, **aiokafka_security(settings))
    await producer.start()
    try:
        await producer.send_and_wait(f"{unique_topic_prefix}-plain", b"x")
    finally:
        await producer.stop()
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert "Request to" in text and "SaslAuthenticateRequest(<redacted>)" in text
    assert f"Authenticated as {sk.scram_user} via PLAIN" in text
    assert sk.scram_password not in text


@dataclass
class Case:
    name: str
    command: str  # "produce" | "worker" (a subprocess) | "produce-in-process"
    bootstrap: str
    security: dict[str, str]
    expect: tuple[str, ...]


def negative_cases(sk: SecureKafka, tmp_path: Path) -> list[Case]:
    ca = str(sk.pki.ca_cert)
    bad_secret = "wrong-" + sk.client_secret
    return [
        Case("mTLS without a client certificate", "produce", sk.mtls,
             {"SESSIONWARDEN_SECURITY_PROTOCOL": "SSL", "SESSIONWARDEN_SSL_CAFILE": ca},
             ("requires a TLS client certificate", "SESSIONWARDEN_SSL_CERTFILE")),
        Case("worker: mTLS without a client certificate", "worker", sk.mtls,
             {"SESSIONWARDEN_SECURITY_PROTOCOL": "SSL", "SESSIONWARDEN_SSL_CAFILE": ca},
             ("requires a TLS client certificate",)),
        Case("mTLS with a certificate from another CA", "produce-in-process", sk.mtls,
             {k: v for k, v in mtls_env(sk, SSL_CERTFILE=str(sk.pki.foreign_cert),
                                        SSL_KEYFILE=str(sk.pki.foreign_key)).items()
              if k != "SESSIONWARDEN_SSL_KEYFILE_PASSWORD"},
             ("rejected the TLS client certificate", str(sk.pki.foreign_cert))),
        Case("mTLS with a wrong key password", "produce-in-process", sk.mtls,
             mtls_env(sk, SSL_KEYFILE_PASSWORD="not-" + sk.pki.key_password),
             ("cannot load the client certificate", "SESSIONWARDEN_SSL_KEYFILE_PASSWORD")),
        Case("a broker certificate nobody trusts", "produce-in-process", sk.mtls,
             {k: v for k, v in mtls_env(sk).items() if k != "SESSIONWARDEN_SSL_CAFILE"},
             ("cannot verify the TLS certificate", "SESSIONWARDEN_SSL_CAFILE")),
        Case("oidc with a bad client secret", "produce-in-process", sk.oauth,
             oauth_env(sk, SASL_OAUTH_CLIENT_SECRET=bad_secret),
             ("refused the client credentials", "invalid_client", sk.client_id)),
        Case("a token the broker rejects", "produce-in-process", sk.oauth,
             oauth_env(sk, SASL_OAUTH_TOKEN_PROVIDER="tests.token_providers:StaticTokenProvider",
                       SASL_OAUTH_EXTENSIONS="") | {TOKEN_ENV: "not.a-valid.token"},
             ("rejected the OAUTHBEARER token", "invalid_token")),
        Case("a token provider that fails", "produce-in-process", sk.oauth,
             oauth_env(sk, SASL_OAUTH_TOKEN_PROVIDER="tests.token_providers:StaticTokenProvider",
                       SASL_OAUTH_EXTENSIONS=""),  # no token in the environment: KeyError
             ("the token provider", "StaticTokenProvider failed: KeyError", TOKEN_ENV)),
        Case("SCRAM with a wrong password", "produce-in-process", sk.scram,
             scram_env(sk, SASL_PASSWORD="wrong-" + sk.scram_password),
             ("rejected the SASL SCRAM-SHA-512 login", sk.scram_user)),
        Case("SCRAM against the mTLS listener", "produce-in-process", sk.mtls,
             scram_env(sk) | {k: v for k, v in mtls_env(sk).items() if "SSL_" in k},
             ("does not expect SASL",)),
    ]


def test_rejected_logins_stop_with_one_line_and_exit_2(
        secure_kafka: SecureKafka, unique_topic_prefix: str, tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """Wrong or missing credentials: exit 2, one line, no traceback, no secret, no hang.

    `produce` and the worker run as real processes for one case; the other
    cases call the same CLI entry point in this process, one after the other
    (a fresh interpreter per case would cost seconds of CPU each).
    """
    sk = secure_kafka
    source = events_file(tmp_path, "neg-1")
    cases = negative_cases(sk, tmp_path)

    def env_of(case: Case) -> dict[str, str]:
        d = SecuredDeployment(case.bootstrap, unique_topic_prefix, security=case.security)
        return d.env(app_id=f"{unique_topic_prefix}-app", data_dir=tmp_path / "state",
                     web_enabled="false", startup_timeout=20)

    started = time.monotonic()
    processes = {case.name: subprocess.Popen(
        [PYTHON, "-m", "worker", *(["produce", str(source)] if case.command == "produce"
                                   else ["worker"])],
        cwd=REPO, env=env_of(case), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for case in cases if case.command in ("produce", "worker")}
    runs: dict[str, CliRun] = {}
    for case in cases:
        if case.command != "produce-in-process":
            continue
        env = env_of(case)
        with monkeypatch.context() as m:
            for name in [n for n in os.environ if n.startswith("SESSIONWARDEN_")]:
                m.delenv(name)
            for name, value in env.items():
                if name.startswith("SESSIONWARDEN_"):
                    m.setenv(name, value)
            t0 = time.monotonic()
            # In a thread of its own: the CLI's asyncio.run() resets the calling
            # thread's event loop, which broke a later pytest-asyncio test here.
            with ThreadPoolExecutor(1) as pool:
                code = pool.submit(main, ["produce", str(source)]).result()
            out, err = capsys.readouterr()
        runs[case.name] = CliRun(code, out, err, time.monotonic() - t0)
    for name, proc in processes.items():
        try:
            out_b, err_b = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            raise AssertionError(f"{name}: still running after 60 s") from None
        runs[name] = CliRun(proc.returncode, out_b.decode(errors="replace"),
                            err_b.decode(errors="replace"), time.monotonic() - started)
    for case in cases:
        run = runs[case.name]
        lines = run.stderr.strip().splitlines()
        assert run.returncode == 2, (case.name, run.returncode, run.stderr[-2000:])
        assert lines and lines[-1].startswith("sessionwarden: "), (case.name, lines)
        if case.command == "worker":  # before it: the worker's own JSON log records
            records = [orjson.loads(line) for line in lines[:-1]]
            assert not [r for r in records if "exc" in r], (case.name, records)
        else:
            assert len(lines) == 1, (case.name, lines)
        assert "Traceback" not in run.stderr, case.name
        for fragment in case.expect:
            assert fragment in lines[-1], (case.name, lines[-1])
        assert run.seconds < NEGATIVE_DEADLINE, (case.name, run.seconds)
        assert_no_secrets(run.stdout + run.stderr, sk, f"the output of {case.name!r}")
        assert "wrong-" not in run.stderr and "not-" + sk.pki.key_password not in run.stderr

