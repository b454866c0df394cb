"""Operator actions: list, release and discard held commands; retry failed ones.

Why through Kafka: the enforcer instance that owns a held command's partition
is the only one allowed to apply it, in order with the session's other
commands. So `release`/`discard` read the held commands from the state topic
and write one control record per command to `session-commands`, keyed by its
session id (same partition as the command); the owner applies or discards
it and publishes the final result. Nothing is released automatically.
"""

from __future__ import annotations

from collections.abc import Iterable

from worker.enforce.commands import DISCARD, RELEASE, RETRY, control_record
from worker.enforce.state import Entry, StateStore
from worker.kafka.client import aiokafka_security, bootstrap_servers
from worker.settings import Settings


async def partition_ids(settings: Settings, topic: str) -> list[int]:
    """The partitions of `topic` (empty when it does not exist), without creating it."""
    from aiokafka.admin import AIOKafkaAdminClient  # noqa: PLC0415

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers(settings.broker),
                                **aiokafka_security(settings))
    await admin.start()
    try:
        if topic not in set(await admin.list_topics()):
            return []
        described = await admin.describe_topics([topic])
        return sorted(p["partition"] for t in described for p in t.get("partitions", ()))
    finally:
        await admin.close()


async def read_state(settings: Settings, timeout: float = 30.0) -> StateStore:
    """The whole state topic (every partition), last record per command wins."""
    import asyncio  # noqa: PLC0415

    from aiokafka import AIOKafkaConsumer, TopicPartition  # noqa: PLC0415

    store = StateStore()
    reader = AIOKafkaConsumer(bootstrap_servers=bootstrap_servers(settings.broker),
                              enable_auto_commit=False, group_id=None,
                              **aiokafka_security(settings))
    await reader.start()
    try:
        parts = await partition_ids(settings, settings.enforce_state_topic)
        if not parts:
            return store
        tps = [TopicPartition(settings.enforce_state_topic, p) for p in sorted(parts)]
        reader.assign(tps)
        await reader.seek_to_beginning(*tps)
        ends = await reader.end_offsets(tps)
        pending = {tp for tp in tps if ends[tp] > 0}
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while pending and loop.time() < deadline:
            batch = await reader.getmany(*pending, timeout_ms=500)
            for tp, msgs in batch.items():
                store.load(tp.partition, ((m.key, m.value) for m in msgs))
            for tp in list(pending):
                if await reader.position(tp) >= ends[tp]:
                    pending.discard(tp)
        if pending:
            raise TimeoutError(f"state topic not read to its end in {timeout}s")
    finally:
        await reader.stop()
    return store


async def send_controls(settings: Settings, action: str, entries: Iterable[Entry],
                        operator: str) -> int:
    """One control record per held command, keyed by its session id."""
    from aiokafka import AIOKafkaProducer  # noqa: PLC0415

    assert action in (RELEASE, DISCARD, RETRY)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap_servers(settings.broker),
                                acks="all", enable_idempotence=True,
                                client_id="sessionwarden-operator",
                                **aiokafka_security(settings))
    await producer.start()
    sent = 0
    try:
        for e in entries:
            await producer.send_and_wait(
                settings.commands_topic,
                control_record(action, e.command_id, e.tenant, e.session_id, operator),
                key=e.session_id.encode())
            sent += 1
    finally:
        await producer.stop()
    return sent


def select_held(store: StateStore, tenant: str, command_ids: list[str] | None,
                *, failed: bool = False) -> tuple[list[Entry], list[str]]:
    """The held (or, with `failed`, failed) entries to act on, and requested ids that are not."""
    held = {e.command_id: e for e in (store.failed(tenant) if failed else store.held(tenant))}
    if command_ids is None:
        return sorted(held.values(), key=lambda e: (e.ts_ms, e.command_id)), []
    return [held[c] for c in command_ids if c in held], [c for c in command_ids if c not in held]
