"""Shared fixtures. The Kafka broker fixtures live in tests/kafka_plugin.py."""

from __future__ import annotations

import pytest

from detectors import DEFAULT_POLICY
from worker.enrich import Enricher
from worker.pipeline import Pipeline
from worker.settings import Settings

pytest_plugins = ["tests.kafka_plugin", "tests.kafka_auth_plugin", "tests.keycloak_plugin"]


@pytest.fixture(scope="session")
def enricher() -> Enricher:
    s = Settings()
    return Enricher.from_settings(s)


@pytest.fixture
def pipeline(enricher: Enricher) -> Pipeline:
    return Pipeline(enricher, DEFAULT_POLICY)
