"""Start-up checks of the Kafka commands: reach the broker, then verify every topic.

Why: a worker that starts against a missing output topic, or one with a
different partition count, reports ready and then loses or misroutes
commands; a worker that dies with a traceback 1.5 s after a broker blip
crash-loops. So, before Faust starts:

1. the broker is retried with capped exponential backoff and one log line per
   attempt, until `startup_timeout`; then `CouldNotRun` (exit 2, one line);
2. every topic the worker reads or writes exists (created when
   `create_topics` is on), has the input topic's partition count, and
   accepts records as large as the worker may publish (`max.message.bytes`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

from worker.errors import CouldNotRun
from worker.kafka.client import aiokafka_security, bootstrap_servers, topic_plan
from worker.kafka.preflight import check_login
from worker.settings import Settings

log = logging.getLogger("sessionwarden.startup")

FIRST_BACKOFF = 0.5
MAX_BACKOFF = 10.0


def _short(exc: BaseException) -> str:
    name = type(exc).__name__
    text = " ".join(str(exc).split())
    return (text if text.startswith(name) else f"{name}: {text}" if text else name)[:300]


async def connect_admin(settings: Settings, *, request_timeout: float = 10.0) -> Any:
    """A started AIOKafkaAdminClient, retried with backoff until `startup_timeout`."""
    from aiokafka.admin import AIOKafkaAdminClient  # noqa: PLC0415

    servers = bootstrap_servers(settings.broker)
    security = aiokafka_security(settings)
    deadline = time.monotonic() + settings.startup_timeout
    backoff = FIRST_BACKOFF
    attempt = 0
    while True:
        attempt += 1
        admin = AIOKafkaAdminClient(bootstrap_servers=servers,
                                    request_timeout_ms=int(request_timeout * 1000), **security)
        try:
            # TLS, SASL, token once, with the clients' options: a rejected certificate,
            # password or token is exit 2 now (worker/kafka/preflight.py), not retried.
            await check_login(settings, request_timeout=request_timeout)
            await admin.start()
            await admin.list_topics()
        except CouldNotRun:
            await _close(admin)
            raise
        except Exception as exc:  # KafkaConnectionError, timeouts
            await _close(admin)
            left = deadline - time.monotonic()
            if left <= 0:
                raise CouldNotRun(f"Kafka broker {servers} not reachable after "
                                  f"{settings.startup_timeout:g}s ({attempt} attempts): "
                                  f"{_short(exc)}") from None
            wait = min(backoff, left)
            log.warning("Kafka broker %s not reachable (attempt %d, retrying in %.1fs): %s",
                        servers, attempt, wait, _short(exc))
            await asyncio.sleep(wait)
            backoff = min(backoff * 2, MAX_BACKOFF)
            continue
        return admin


async def _close(admin: Any) -> None:
    try:
        await admin.close()
    except Exception:  # a half-started client; nothing to release
        log.debug("closing a failed admin client raised", exc_info=True)


async def prepare_topics(settings: Settings, *, timeout: float = 30.0) -> int:
    """Create (if allowed) and verify every topic; returns the input's partition count."""
    from aiokafka.admin import NewTopic  # noqa: PLC0415
    from aiokafka.errors import TopicAlreadyExistsError  # noqa: PLC0415

    admin = await connect_admin(settings)
    try:
        counts = await partition_counts(admin)
        partitions = counts.get(settings.input_topic) or settings.topic_partitions
        plan = topic_plan(settings, partitions)
        missing = [name for name in plan.partitions if name not in counts]
        if missing and not settings.create_topics:
            raise CouldNotRun(f"topic(s) {', '.join(missing)} do not exist: create them with "
                              f"{partitions} partitions, or set SESSIONWARDEN_CREATE_TOPICS=true")
        if missing:
            new = [NewTopic(name=name, num_partitions=partitions,
                            replication_factor=settings.topic_replication,
                            topic_configs=plan.configs.get(name, {})) for name in missing]
            with contextlib.suppress(TopicAlreadyExistsError):  # another worker won the race
                await admin.create_topics(new, timeout_ms=int(timeout * 1000))
            log.info("created topics", extra={"topics": missing, "partitions": partitions})
            await wait_for_leaders(admin, missing, timeout)  # metadata catches up
            counts = await partition_counts(admin)
        wrong = {name: counts.get(name) for name in plan.partitions
                 if counts.get(name) != partitions}
        if wrong:
            detail = ", ".join(f"{name} has {n}" for name, n in wrong.items())
            raise CouldNotRun(f"every topic needs the input topic's {partitions} partitions "
                              f"(outputs are keyed like the input): {detail}")
        await _check_sizes(admin, settings, plan.configs, reads=settings.input_topic)
        await wait_for_leaders(admin, list(plan.partitions), timeout)
        return partitions
    finally:
        await _close(admin)


async def partition_counts(admin: Any, topics: list[str] | None = None) -> dict[str, int]:
    """Partition count of existing topics (never asks for a missing one).

    A metadata request for a missing topic auto-creates it with one
    partition on brokers with auto.create.topics.enable.
    """
    existing = set(await admin.list_topics())
    wanted = [t for t in (topics if topics is not None else existing) if t in existing]
    if not wanted:
        return {}
    described = await admin.describe_topics(wanted)
    return {t["topic"]: len(t["partitions"]) for t in described
            if t.get("error_code") == 0 and t.get("partitions")}


async def max_message_bytes(admin: Any, topics: list[str]) -> dict[str, int]:
    """Each topic's effective `max.message.bytes` (its own, or the broker default)."""
    from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType  # noqa: PLC0415

    resources = [ConfigResource(ConfigResourceType.TOPIC, name,
                                configs={"max.message.bytes": None}) for name in topics]
    if not resources:
        return {}
    responses = await admin.describe_configs(resources)
    actual: dict[str, int] = {}
    for response in responses:
        for resource in response.resources:
            name, entries = resource[3], resource[4]
            for entry in entries:
                if entry[0] == "max.message.bytes" and entry[1] is not None:
                    actual[name] = int(entry[1])
    return actual


async def topic_limits(settings: Settings, topics: list[str]) -> dict[str, int]:
    """`max_message_bytes` of topics, read now (the worker's sender checks records against it)."""
    admin = await connect_admin(settings)
    try:
        return await max_message_bytes(admin, topics)
    finally:
        await _close(admin)


async def _check_sizes(admin: Any, settings: Settings,
                       wanted: dict[str, dict[str, str]], *, reads: str) -> None:
    """Each topic accepts the largest record the worker may send to it.

    The worker only reads `reads` (the input topic): a smaller limit there
    refuses large events upstream, at the producer, which is the producer's
    business; it is logged, not fatal (an existing 1 MiB input topic is common).
    """
    actual = await max_message_bytes(admin, list(wanted))
    small = {name: (actual[name], int(cfg["max.message.bytes"]))
             for name, cfg in wanted.items()
             if name in actual and actual[name] < int(cfg["max.message.bytes"])}
    if reads in small:
        have, need = small.pop(reads)
        log.warning("the input topic accepts smaller records than the worker's limit: larger "
                    "events are refused to their producer", extra={
                        "topic": reads, "max_message_bytes": have,
                        "SESSIONWARDEN_MAX_MESSAGE_BYTES": need})
    if small:
        detail = ", ".join(f"{name} accepts {have:,} bytes, needs {need:,}"
                           for name, (have, need) in small.items())
        raise CouldNotRun(f"topic(s) too small for the records the worker sends: {detail} "
                          "(raise max.message.bytes, or lower SESSIONWARDEN_MAX_OUTPUT_BYTES / "
                          "SESSIONWARDEN_MAX_MESSAGE_BYTES)")


async def wait_for_leaders(admin: Any, topics: list[str], timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        described = await admin.describe_topics(topics)
        ready = {t["topic"] for t in described
                 if t.get("error_code") == 0 and len(t["partitions"]) >= 1
                 and all(p["leader"] >= 0 for p in t["partitions"])}
        if ready >= set(topics):
            return
        if loop.time() > deadline:
            raise CouldNotRun(f"topics without a leader after {timeout:g}s: "
                              f"{', '.join(sorted(set(topics) - ready))}")
        await asyncio.sleep(0.1)
