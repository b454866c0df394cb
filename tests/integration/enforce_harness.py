"""Helpers for the enforcer's tests: enforcer and ingest processes, files, results.

Processes run as `python -m worker enforce|ingest` subprocesses, like the
worker in worker_harness.py: process boundaries (kill -9, restart) are what
the enforcer's guarantees are about.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson

from tests.integration.worker_harness import PYTHON, REPO, Collector, Deployment, free_port

SECRET_ENV = "SESSIONWARDEN_TEST_KC_SECRET"


def enforce_env(d: Deployment, **extra: Any) -> dict[str, str]:
    p = d.prefix
    topics = {"results_topic": f"{p}-enforcement", "enforce_state_topic": f"{p}-enforcement-state"}
    return d.env(**(topics | extra))


def results_topic(d: Deployment) -> str:
    return f"{d.prefix}-enforcement"


def write_targets(path: Path, keycloak_url: str, realms: list[str], secret_env: str = SECRET_ENV,
                  **options: Any) -> Path:
    lines = []
    for realm in realms:
        lines += [f'[tenants."{realm}"]', 'kind = "keycloak"', f'base_url = "{keycloak_url}"',
                  f'realm = "{realm}"', 'client_id = "sessionwarden-enforcer"',
                  f'client_secret_env = "{secret_env}_{realm.upper().replace("-", "_")}"',
                  *(f"{k} = {v!r}" if not isinstance(v, str) else f'{k} = "{v}"'
                    for k, v in options.items()), ""]
    path.write_text("\n".join(lines))
    return path


def secret_env(realm: str, secret: str) -> dict[str, str]:
    return {f"{SECRET_ENV}_{realm.upper().replace('-', '_')}": secret}


class Proc:
    """A `python -m worker ...` subprocess with its own log."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path,
                 web_port: int | None = None) -> None:
        self.args = args
        self.env = env
        self.log = log
        self.port = web_port
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        with self.log.open("ab") as fh:
            self.proc = subprocess.Popen([PYTHON, "-m", "worker", *self.args], cwd=REPO,
                                         env=self.env, stdout=fh, stderr=subprocess.STDOUT)
        return self

    def health(self) -> int:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health",
                                        timeout=2) as resp:
                return int(resp.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)
        except OSError:
            return 0

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=2) as r:
            return bytes(r.read()).decode()

    async def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc is not None and self.proc.poll() is None, self.tail()
            if await asyncio.to_thread(self.health) == 200:
                return
            await asyncio.sleep(0.2)
        raise AssertionError(f"{self.args[0]} not ready in {timeout}s\n{self.tail()}")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        self.proc.wait(10)

    def terminate(self, timeout: float = 30.0) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise

    def tail(self, n: int = 40) -> str:
        lines = self.log.read_text(errors="replace").splitlines() if self.log.exists() else []
        return "\n".join(lines[-n:])


def enforcer(d: Deployment, tmp: Path, targets: Path, policy: Path | None, env: dict[str, str],
             name: str = "enforcer", group: str | None = None, **settings: Any) -> Proc:
    port = free_port()
    args = ["enforce", "--targets", str(targets), "--web-port", str(port),
            "--group", group or f"{d.prefix}-enforcer"]
    if policy is not None:
        args += ["--policy", str(policy)]
    return Proc(args, enforce_env(d, **settings) | env, tmp / f"{name}.log", port)


def ingest(d: Deployment, tmp: Path, keycloak_url: str, realm: str, secret: str,
           name: str | None = None) -> Proc:
    env = d.env() | {"SESSIONWARDEN_KEYCLOAK_CLIENT_SECRET": secret}
    return Proc(["ingest", "keycloak", "--url", keycloak_url, "--realm", realm,
                 "--client-id", "sessionwarden-enforcer", "--interval", "0.2"],
                env, tmp / f"{name or 'ingest-' + realm}.log")


def results(c: Collector, d: Deployment) -> list[dict[str, Any]]:
    return [orjson.loads(r.value) for r in c.records[results_topic(d)]]


def result_for(c: Collector, d: Deployment, session_id: str) -> list[dict[str, Any]]:
    return [r for r in results(c, d) if r["session_id"] == session_id]
