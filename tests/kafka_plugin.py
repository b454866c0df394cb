"""Pytest plugin: a real single-node Kafka broker for tests marked ``kafka``.

Why: Kafka semantics (groups, transactions, compaction) are what the worker
relies on, so integration tests run against a genuine broker that the
project starts itself (``scripts/kafka_local.py``) rather than a fake.

Register from ``tests/conftest.py`` with ``pytest_plugins = ["tests.kafka_plugin"]``.

* ``kafka_bootstrap`` (session): ``SESSIONWARDEN_TEST_BOOTSTRAP`` if set, else
  one ``LocalKafka`` per session, started lazily on first use.  A broker that
  cannot start fails the requesting tests (never skips), in CI and locally.
* ``kafka_admin`` (function, async): a started ``AIOKafkaAdminClient``.
* ``unique_topic_prefix`` (function): per-test unique topic/group prefix.
* ``create_topics(bootstrap, {name: partitions})``: idempotent helper.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
import re
import shutil
import sys
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import pytest_asyncio
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError, for_code

BOOTSTRAP_ENV = "SESSIONWARDEN_TEST_BOOTSTRAP"
START_TIMEOUT_ENV = "SESSIONWARDEN_KAFKA_START_TIMEOUT"
_MODULE_NAME = "sessionwarden_kafka_local"
_KAFKA_LOCAL_PATH = Path(__file__).resolve().parent.parent / "scripts" / "kafka_local.py"


def load_kafka_local() -> ModuleType:
    """Import ``scripts/kafka_local.py`` by path (``scripts/`` is no package)."""
    module = sys.modules.get(_MODULE_NAME)
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location(_MODULE_NAME, _KAFKA_LOCAL_PATH)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {_KAFKA_LOCAL_PATH}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE_NAME] = module
    spec.loader.exec_module(module)
    return module


def _in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def pytest_configure(config: pytest.Config) -> None:
    """Register the marker so ``--strict-markers`` and ``-m kafka`` work."""
    config.addinivalue_line(
        "markers", "kafka: needs a real Kafka broker (started by scripts/kafka_local.py)"
    )


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that uses the broker, so ``-m 'not kafka'`` skips Java."""
    for item in items:
        if "kafka_bootstrap" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kafka)


def _report(config: pytest.Config, line: str) -> None:
    """Show a line on the terminal even while output capture is active."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capman = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    if capman is None:
        reporter.write_line(line)
        return
    with capman.global_and_fixture_disabled():
        reporter.write_line(line)


@pytest.fixture(scope="session")
def kafka_bootstrap(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """Bootstrap address of the session's broker (external or started here)."""
    external = os.environ.get(BOOTSTRAP_ENV, "").strip()
    if external:
        yield external
        return
    kafka_local = load_kafka_local()
    run_dir = tmp_path_factory.mktemp("kafka-local")
    # die_with_parent: a crashed/killed pytest must not leave a JVM behind.
    broker = kafka_local.LocalKafka(run_dir, die_with_parent=True)
    timeout = float(os.environ.get(START_TIMEOUT_ENV, "120"))
    error: Exception | None = None
    try:
        bootstrap: str = broker.start(timeout=timeout)
    except Exception as exc:  # any start failure must fail loudly, never skip
        error = exc
    if error is not None:  # outside ``except``: no chained traceback noise
        where = "in CI" if _in_ci() else "locally"
        pytest.fail(
            f"could not start the local Kafka broker {where}: {error}\n"
            f"(needs java 17+ and mvn for the first fetch; or point {BOOTSTRAP_ENV} "
            "at a running broker; or deselect with -m 'not kafka')",
            pytrace=False,
        )
    _report(
        request.config,
        f"kafka-local: Kafka {broker.version} at {bootstrap} "
        f"ready in {broker.startup_seconds:.2f}s (log: {broker.log_path})",
    )
    try:
        yield bootstrap
    finally:
        # Keep broker.log under pytest's tmp dir for post-mortems; drop data.
        broker.stop(keep=True)
        shutil.rmtree(run_dir / "data", ignore_errors=True)


async def create_topics(
    bootstrap: str,
    topics: Mapping[str, int],
    *,
    configs: Mapping[str, Mapping[str, str]] | None = None,
    timeout: float = 30.0,
) -> None:
    """Create ``{name: partitions}`` (existing ones are fine) and wait for leaders.

    Why: Faust and our workers do not create source topics, and producing
    right after CreateTopics can race the partition leader election.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    await admin.start()
    try:
        await create_topics_with(admin, topics, configs=configs, timeout=timeout)
    finally:
        await admin.close()


async def create_topics_with(
    admin: AIOKafkaAdminClient,
    topics: Mapping[str, int],
    *,
    configs: Mapping[str, Mapping[str, str]] | None = None,
    timeout: float = 30.0,
) -> None:
    """Like :func:`create_topics` but with an already started admin client."""
    configs = configs or {}
    new_topics = [
        NewTopic(
            name=name,
            num_partitions=partitions,
            replication_factor=1,
            topic_configs=dict(configs.get(name, {})),
        )
        for name, partitions in topics.items()
    ]
    try:
        response: Any = await admin.create_topics(new_topics, timeout_ms=int(timeout * 1000))
    except TopicAlreadyExistsError:
        response = None
    for entry in getattr(response, "topic_errors", ()):
        name, code = entry[0], entry[1]
        if code not in (0, TopicAlreadyExistsError.errno):
            raise for_code(code)(f"cannot create topic {name!r}: {entry[2:]}")
    await _wait_for_leaders(admin, topics, timeout)


async def _wait_for_leaders(
    admin: AIOKafkaAdminClient, topics: Mapping[str, int], timeout: float
) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        described = await admin.describe_topics(list(topics))
        ready = {
            t["topic"]
            for t in described
            if t["error_code"] == 0
            and len(t["partitions"]) >= topics.get(t["topic"], 1)
            and all(p["leader"] >= 0 for p in t["partitions"])
        }
        if ready >= set(topics):
            return
        if loop.time() > deadline:
            raise TimeoutError(f"topics without leaders after {timeout}s: {set(topics) - ready}")
        await asyncio.sleep(0.1)


@pytest_asyncio.fixture
async def kafka_admin(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaAdminClient]:
    """A started admin client on the session broker, closed after the test."""
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        yield admin
    finally:
        await admin.close()


@pytest.fixture
def unique_topic_prefix(request: pytest.FixtureRequest) -> str:
    """``t-<test name>-<8 hex>``: tests sharing one broker never collide."""
    name = re.sub(r"[^a-zA-Z0-9._-]+", "-", request.node.name).strip("-")[:60]
    return f"t-{name}-{uuid.uuid4().hex[:8]}"
