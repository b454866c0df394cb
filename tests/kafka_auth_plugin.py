"""Pytest plugin: ONE secured Kafka broker per session for the authentication tests.

Why a second broker: the secured listeners (mTLS, SCRAM/PLAIN over TLS,
OAUTHBEARER validated against a JWKS) need a broker started with
certificates, a SCRAM user and a loopback OAuth server; the plain session
broker (`tests/kafka_plugin.py`) stays as it is for everything else. It is
started lazily by the first test that asks for `secure_kafka` and fails (never
skips) that test if it cannot start.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

from tests.kafka_plugin import START_TIMEOUT_ENV, _in_ci, _report

if TYPE_CHECKING:
    from tests.secure_kafka import SecureKafka


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests on the secured broker are `kafka` tests too (`-m 'not kafka'` skips Java)."""
    for item in items:
        if "secure_kafka" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kafka)


@pytest.fixture(scope="session")
def secure_kafka(request: pytest.FixtureRequest,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecureKafka]:
    """The secured broker's listeners and credentials (see `tests.secure_kafka`)."""
    from tests.secure_kafka import start_secure_broker  # noqa: PLC0415  # only when used

    run_dir = tmp_path_factory.mktemp("kafka-secure")
    pki_dir = tmp_path_factory.mktemp("pki")
    timeout = float(os.environ.get(START_TIMEOUT_ENV, "120"))
    error: Exception | None = None
    try:
        broker, secure = start_secure_broker(run_dir, pki_dir, timeout=timeout)
    except Exception as exc:  # a start failure must fail loudly, never skip
        error = exc
    if error is not None:
        where = "in CI" if _in_ci() else "locally"
        pytest.fail(f"could not start the secured local Kafka broker {where}: {error}\n"
                    "(needs java 17+ and mvn for the first fetch; or deselect with -m 'not kafka')",
                    pytrace=False)
    _report(request.config,
            f"kafka-local: secured Kafka {broker.version} (mTLS {secure.mtls}, SCRAM "
            f"{secure.scram}, OAuth {secure.oauth}) ready in {broker.startup_seconds:.2f}s "
            f"(log: {broker.log_path})")
    try:
        yield secure
    finally:
        broker.stop(keep=True)
        shutil.rmtree(run_dir / "data", ignore_errors=True)
        secure.oauth_server.stop()
