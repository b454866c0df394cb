"""RFC 8935 push delivery of `session-signals` to an SSF receiver, at least once.

`sessionwarden push-signals` is its own consumer group on the signals topic
(the worker never waits for a receiver). For each record, in partition
order, it POSTs the SET to the receiver's endpoint and commits the offsets
of a batch only after every SET in it was accepted or definitively refused.
A crash or restart re-sends the uncommitted tail: the `jti` is deterministic,
so the receiver de-duplicates (RFC 8935 section 2: the receiver "SHOULD"
ignore a SET whose jti it has seen).

Responses (RFC 8935 sections 2.2-2.4, https://www.rfc-editor.org/rfc/rfc8935):

- 2xx (202 Accepted per the RFC) -> delivered.
- 400 with `{"err": ..., "description": ...}` (invalid_request, invalid_key,
  invalid_issuer, invalid_audience, authentication_failed, access_denied), or
  413 -> refused for good: the record goes to the signals DLQ with the
  reason in headers, never silently dropped, and delivery moves on.
- Anything else (connection errors, timeouts, 408, 429, 5xx, and 401/403/404
  which are configuration problems that would otherwise refuse every SET) ->
  retried with exponential backoff (Retry-After honoured up to the cap);
  after `push_max_attempts` the command exits with status 75 without
  committing, so a restart resumes at the same SET.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
from pydantic import SecretStr

from worker.settings import Settings

log = logging.getLogger("sessionwarden.push")

CONTENT_TYPE = "application/secevent+jwt"
EXIT_UNDELIVERABLE = 75
"""EX_TEMPFAIL: the receiver kept failing; offsets were not committed."""
HEADER_PREFIX = "sessionwarden."


class Undeliverable(RuntimeError):
    """The receiver did not accept a SET within the allowed attempts."""


@dataclass(slots=True, frozen=True)
class Outcome:
    """What happened to one SET."""

    delivered: bool
    status: int | None
    attempts: int
    err: str | None = None
    description: str | None = None


@dataclass(slots=True)
class PushStats:
    delivered: int = 0
    rejected: int = 0
    invalid: int = 0
    retries: int = 0
    batches: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"delivered": self.delivered, "rejected": self.rejected,
                "invalid": self.invalid, "retries": self.retries, "batches": self.batches}


def _refusal(response: httpx.Response) -> tuple[str | None, str | None]:
    try:
        body = response.json()
    except ValueError:
        return None, response.text[:200] or None
    if not isinstance(body, dict):
        return None, None
    err, desc = body.get("err"), body.get("description")
    return (str(err) if err is not None else None, str(desc) if desc is not None else None)


def _retry_after(response: httpx.Response | None) -> float | None:
    value = response.headers.get("retry-after") if response is not None else None
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None  # an HTTP date: fall back to our own backoff


@dataclass
class Pusher:
    """Delivers one SET at a time to one receiver, retrying what is worth retrying."""

    client: httpx.AsyncClient
    endpoint: str
    authorization: SecretStr | None = None
    max_attempts: int = 8
    backoff: float = 0.5
    backoff_max: float = 30.0
    sleep: Callable[[float], Awaitable[Any]] = field(default=asyncio.sleep)
    stats: PushStats = field(default_factory=PushStats)

    def _headers(self) -> dict[str, str]:
        headers = {"Content-Type": CONTENT_TYPE, "Accept": "application/json"}
        if self.authorization is not None:
            headers["Authorization"] = self.authorization.get_secret_value()
        return headers

    async def deliver(self, token: str) -> Outcome:
        """POST one SET; an Outcome if accepted or refused for good, Undeliverable otherwise."""
        delay = self.backoff
        last = "no attempt"
        for attempt in range(1, self.max_attempts + 1):
            response: httpx.Response | None = None
            try:
                response = await self.client.post(self.endpoint, content=token.encode(),
                                                   headers=self._headers())
            except httpx.HTTPError as exc:
                last = f"{type(exc).__name__}: {exc}"
            else:
                if response.is_success:
                    return Outcome(True, response.status_code, attempt)
                if response.status_code in (400, 413):
                    err, desc = _refusal(response)
                    return Outcome(False, response.status_code, attempt, err, desc)
                last = f"HTTP {response.status_code}"
            if attempt == self.max_attempts:
                break
            self.stats.retries += 1
            wait = _retry_after(response)
            await self.sleep(min(wait if wait is not None else delay, self.backoff_max))
            delay = min(delay * 2, self.backoff_max)
        raise Undeliverable(f"receiver {self.endpoint} did not accept a SET after "
                            f"{self.max_attempts} attempts (last: {last})")


def _text(value: object) -> bytes:
    return str(value)[:1024].encode("utf-8", errors="replace")


class PushRunner:
    """Consumes the signals topic and pushes every SET (see the module doc)."""

    def __init__(self, settings: Settings, pusher: Pusher) -> None:
        self.settings = settings
        self.pusher = pusher
        self.stats = pusher.stats

    async def _handle(self, message: Any, producer: Any) -> None:
        value: bytes = message.value or b""
        try:
            record = orjson.loads(value)
            token = record["set"] if isinstance(record, dict) else None
        except (orjson.JSONDecodeError, KeyError):
            token = None
        origin = [(f"{HEADER_PREFIX}origin.topic", _text(message.topic)),
                  (f"{HEADER_PREFIX}origin.partition", _text(message.partition)),
                  (f"{HEADER_PREFIX}origin.offset", _text(message.offset))]
        if not isinstance(token, str) or token.count(".") != 2:
            self.stats.invalid += 1
            log.warning("not a session-signals record; dead-lettered",
                        extra={"offset": message.offset, "partition": message.partition})
            await producer.send_and_wait(
                self.settings.signals_dlq_topic, value, key=message.key,
                headers=[(f"{HEADER_PREFIX}error", b"not a session-signals record"), *origin])
            return
        outcome = await self.pusher.deliver(token)
        jti = record.get("jti")
        if outcome.delivered:
            self.stats.delivered += 1
            log.debug("SET delivered", extra={"jti": jti, "status": outcome.status,
                                              "attempts": outcome.attempts})
            return
        self.stats.rejected += 1
        log.warning("receiver refused a SET; dead-lettered",
                    extra={"jti": jti, "status": outcome.status, "err": outcome.err,
                           "description": outcome.description})
        await producer.send_and_wait(self.settings.signals_dlq_topic, value, key=message.key,
                                     headers=[
            (f"{HEADER_PREFIX}error", _text(f"receiver refused the SET: HTTP {outcome.status}")),
            (f"{HEADER_PREFIX}http_status", _text(outcome.status)),
            (f"{HEADER_PREFIX}err", _text(outcome.err or "")),
            (f"{HEADER_PREFIX}description", _text(outcome.description or "")),
            (f"{HEADER_PREFIX}jti", _text(jti)), *origin])

    async def run(self, stop: asyncio.Event) -> None:
        """Until `stop` is set: fetch, deliver in order, then commit the batch."""
        from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition  # noqa: PLC0415
        from aiokafka.errors import CommitFailedError  # noqa: PLC0415

        from worker.kafka.client import aiokafka_security, bootstrap_servers  # noqa: PLC0415

        s = self.settings
        servers = bootstrap_servers(s.broker)
        consumer = AIOKafkaConsumer(
            s.signals_topic, bootstrap_servers=servers, group_id=s.push_group or f"{s.app_id}-push",
            enable_auto_commit=False, auto_offset_reset="earliest",
            session_timeout_ms=int(s.broker_session_timeout * 1000),
            heartbeat_interval_ms=int(s.broker_heartbeat_interval * 1000),
            max_poll_interval_ms=max(300_000, int(s.push_max_attempts * s.push_backoff_max
                                                  * 1000 * 2)),
            **aiokafka_security(s))
        producer = AIOKafkaProducer(bootstrap_servers=servers, acks="all",
                                    enable_idempotence=True, **aiokafka_security(s))
        await producer.start()
        await consumer.start()
        try:
            while not stop.is_set():
                batch = await consumer.getmany(timeout_ms=200, max_records=500)
                if not batch:
                    continue
                offsets: dict[TopicPartition, int] = {}
                for tp, messages in batch.items():
                    for message in messages:
                        await self._handle(message, producer)
                    offsets[tp] = messages[-1].offset + 1
                try:
                    await consumer.commit(offsets)
                except CommitFailedError as exc:  # rebalanced: the new owner re-sends
                    log.warning("offset commit failed; SETs may be re-sent",
                                extra={"error": repr(exc)})
                self.stats.batches += 1
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()
            with contextlib.suppress(Exception):
                await producer.stop()


async def push_signals(settings: Settings) -> PushStats:
    """`sessionwarden push-signals`: run until SIGTERM/SIGINT; raises Undeliverable."""
    if not settings.push_endpoint:
        raise ValueError("set SESSIONWARDEN_PUSH_ENDPOINT to the SSF receiver's push URL")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with httpx.AsyncClient(timeout=settings.push_timeout) as client:
        pusher = Pusher(client, settings.push_endpoint, settings.push_authorization,
                        max(settings.push_max_attempts, 1), settings.push_backoff,
                        settings.push_backoff_max)
        await PushRunner(settings, pusher).run(stop)
        return pusher.stats
