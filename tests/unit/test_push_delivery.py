"""RFC 8935 push delivery against a real HTTP receiver on loopback (no Kafka here).

Why: what decides at-least-once is how each response is treated -- accepted,
refused for good (dead letter), or retried -- and what goes over the wire.
The Kafka loop around it is tested in tests/integration/test_push_signals.py.
"""

from __future__ import annotations

import socket
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from tests.ssf_receiver import Receiver
from worker.signals.caep import SubjectConfig, signals_for
from worker.signals.keys import SigningKey
from worker.signals.push import Pusher, Undeliverable
from worker.signals.tokens import Signer

pytestmark = pytest.mark.asyncio


@pytest.fixture(scope="module")
def signer() -> Signer:
    return Signer(SigningKey.generate(), SubjectConfig("https://sw.example.com/"))


def token(signer: Signer, n: int = 1) -> str:
    cmd = {"command_id": f"c{n}", "type": "revoke_session", "tenant": "acme",
           "session_id": f"s-{n}", "user_id": "u1", "cause_event_id": f"e{n}",
           "reason": "Invalid network change", "policy_version": "p1"}
    [signal] = signals_for(signer.config, [cmd], [], event_id=f"e{n}", session_id=f"s-{n}",
                           user_id="u1", tenant="acme", occurred_at=1_793_491_200_000)
    return signer.sign(signal.claims)


class Sleeps:
    def __init__(self) -> None:
        self.calls: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.calls.append(seconds)


def pusher(client: httpx.AsyncClient, url: str, **kw: Any) -> tuple[Pusher, Sleeps]:
    sleeps = Sleeps()
    return Pusher(client, url, sleep=sleeps, **kw), sleeps


async def test_accepted_set_is_posted_as_rfc8935_says(signer: Signer) -> None:
    with Receiver(signer.jwks()).running() as rx:
        async with httpx.AsyncClient() as client:
            p, sleeps = pusher(client, rx.url, authorization=SecretStr("Bearer s3cret"))
            outcome = await p.deliver(token(signer))
    assert (outcome.delivered, outcome.status, outcome.attempts) == (True, 202, 1)
    [req] = rx.requests
    assert req.headers["content-type"] == "application/secevent+jwt"
    assert req.headers["accept"] == "application/json"
    assert req.headers["authorization"] == "Bearer s3cret"
    assert req.claims is not None and req.claims["jti"] == req.jti
    assert sleeps.calls == []


async def test_transient_failures_are_retried_with_backoff_and_retry_after(
        signer: Signer) -> None:
    replies = {0: (503, None, {"Retry-After": "2"}), 1: (500, None, {}), 2: (429, None, {})}
    with Receiver(signer.jwks(), respond=lambda n, jti: replies.get(n)).running() as rx:
        async with httpx.AsyncClient() as client:
            p, sleeps = pusher(client, rx.url, backoff=0.25, backoff_max=10)
            outcome = await p.deliver(token(signer))
    assert (outcome.delivered, outcome.attempts) == (True, 4)
    assert [r.status for r in rx.requests] == [503, 500, 429, 202]
    assert sleeps.calls == [2.0, 0.5, 1.0]  # Retry-After, then the doubling backoff
    assert p.stats.retries == 3


async def test_a_refused_set_is_not_retried(signer: Signer) -> None:
    refuse = (400, {"err": "invalid_audience", "description": "not for us"}, {})
    with Receiver(signer.jwks(), respond=lambda n, jti: refuse).running() as rx:
        async with httpx.AsyncClient() as client:
            p, _ = pusher(client, rx.url)
            outcome = await p.deliver(token(signer))
    assert (outcome.delivered, outcome.status, outcome.err, outcome.description) == (
        False, 400, "invalid_audience", "not for us")
    assert len(rx.requests) == 1


async def test_the_receiver_refuses_a_set_it_cannot_verify(signer: Signer) -> None:
    other = Signer(SigningKey.generate(), signer.config)
    with Receiver(signer.jwks()).running() as rx:
        async with httpx.AsyncClient() as client:
            p, _ = pusher(client, rx.url)
            outcome = await p.deliver(token(other))
    assert (outcome.delivered, outcome.err) == (False, "invalid_key")


async def test_a_receiver_that_keeps_failing_is_undeliverable(signer: Signer) -> None:
    with Receiver(signer.jwks(), respond=lambda n, jti: (503, None, {})).running() as rx:
        async with httpx.AsyncClient() as client:
            p, sleeps = pusher(client, rx.url, max_attempts=4, backoff=1, backoff_max=3)
            with pytest.raises(Undeliverable, match="after 4 attempts"):
                await p.deliver(token(signer))
    assert len(rx.requests) == 4
    assert sleeps.calls == [1, 2, 3]  # capped


async def test_an_unreachable_receiver_is_retried_then_undeliverable(signer: Signer) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    async with httpx.AsyncClient(timeout=2) as client:
        p, sleeps = pusher(client, f"http://127.0.0.1:{port}/events", max_attempts=3)
        with pytest.raises(Undeliverable, match="ConnectError"):
            await p.deliver(token(signer))
    assert len(sleeps.calls) == 2
