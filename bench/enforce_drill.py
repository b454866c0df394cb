"""The kill -9 drill's instruments: a counting proxy in front of the IdP, and the check.

Why a proxy: "applied twice" is a fact about the IdP, not about the
enforcer's own bookkeeping, and the enforcer is the process being killed, so
its logs cannot be trusted to count. The proxy sits between the enforcer and
Keycloak (the targets file points at it), forwards every request unchanged
and records method, path, query and status.

The check (`check_drill`), given every command produced, every result read
from `session-enforcement` and the proxy's record:

* lost: a command without a result;
* duplicate results: a command with more than one result (a held command
  resolved by an operator legitimately has two; the drill holds none);
* double applied: a command whose session received more than one revoking
  request (`DELETE .../sessions/{id}` without `isOffline`) -- an enforcer
  that re-sends a command it already applied is caught here even though
  Keycloak answers the second DELETE with 404.

The check is pure (no I/O), so tests feed it both real drills and runs that
must fail it.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "te", "trailer",
                         "upgrade", "proxy-authorization", "proxy-authenticate", "host",
                         "content-length"})


@dataclass(frozen=True, slots=True)
class ProxiedCall:
    method: str
    path: str
    query: str
    status: int | None
    at: float


@dataclass
class CountingProxy:
    """An aiohttp reverse proxy on 127.0.0.1 that records every exchange."""

    upstream: str
    calls: list[ProxiedCall] = field(default_factory=list)
    port: int | None = None
    _runner: Any = None
    _client: httpx.AsyncClient | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> str:
        from aiohttp import web  # noqa: PLC0415

        self._client = httpx.AsyncClient(base_url=self.upstream.rstrip("/"), timeout=30,
                                         limits=httpx.Limits(max_connections=64))

        async def handle(request: web.Request) -> web.StreamResponse:
            assert self._client is not None
            body = await request.read()
            headers = {k: v for k, v in request.headers.items()
                       if k.lower() not in _HOP_BY_HOP}
            status: int | None = None
            try:
                upstream = await self._client.request(request.method, request.path_qs,
                                                      content=body, headers=headers)
                status = upstream.status_code
                out = {k: v for k, v in upstream.headers.items()
                       if k.lower() not in _HOP_BY_HOP | {"content-encoding"}}
                return web.Response(status=status, body=upstream.content, headers=out)
            finally:
                self.calls.append(ProxiedCall(request.method, request.path,
                                              request.query_string, status, time.time()))

        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        return self.url

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
        if self._client is not None:
            await self._client.aclose()

    def revoking_calls(self, session_id: str) -> list[ProxiedCall]:
        return [c for c in self.calls if c.method == "DELETE"
                and c.path.endswith(f"/sessions/{session_id}") and "isOffline" not in c.query]


@dataclass
class DrillReport:
    commands: int
    results: int
    lost: list[str]
    duplicate_results: list[str]
    double_applied: list[str]
    outcomes: dict[str, int]
    in_doubt: int
    revoking_requests: int

    @property
    def ok(self) -> bool:
        return not (self.lost or self.duplicate_results or self.double_applied)

    def as_dict(self) -> dict[str, Any]:
        return {"commands": self.commands, "results": self.results, "lost": len(self.lost),
                "duplicate_results": len(self.duplicate_results),
                "double_applied": len(self.double_applied), "outcomes": self.outcomes,
                "in_doubt": self.in_doubt, "revoking_requests": self.revoking_requests}


def check_drill(commands: list[dict[str, Any]], results: list[dict[str, Any]],
                calls: list[ProxiedCall]) -> DrillReport:
    """Lost, duplicated and double-applied commands (see the module doc)."""
    by_command = Counter(r["command_id"] for r in results)
    wanted = {c["command_id"]: c["session_id"] for c in commands}
    revoking = Counter(c.path.rsplit("/", 1)[1] for c in calls
                       if c.method == "DELETE" and "/sessions/" in c.path
                       and "isOffline" not in c.query)
    return DrillReport(
        commands=len(wanted), results=len(results),
        lost=sorted(cid for cid in wanted if by_command[cid] == 0),
        duplicate_results=sorted(cid for cid, n in by_command.items() if n > 1),
        double_applied=sorted(cid for cid, sid in wanted.items() if revoking[sid] > 1),
        outcomes=dict(Counter(r["outcome"] for r in results)),
        in_doubt=sum(1 for r in results if r.get("in_doubt")),
        revoking_requests=sum(revoking.values()))


def revoke_command(i: int, realm: str, session_id: str, user_id: str | None) -> dict[str, Any]:
    """A revoke as the worker would publish it (one per hijacked session)."""
    return {"command_id": f"drill-{realm}-{i:05d}", "type": "revoke_session", "tenant": realm,
            "session_id": session_id, "user_id": user_id,
            "issued_at": "2026-11-01T00:00:00.000Z", "cause_event_id": f"drill-event-{i}",
            "reason": "Invalid network change. Login again from a trusted network",
            "preserve_refresh_tokens": False, "detections": [],
            "policy_version": "sha256:drill"}


async def wait_until(predicate: Any, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)
