"""Replay's compact state (worker/state.py) decides exactly as a plain dict does."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors import DEFAULT_POLICY
from worker.enrich import Enricher
from worker.pipeline import MemoryStore, Outputs, Pipeline
from worker.state import CompactStore

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "data" / "demo" / "events.jsonl"
IDP = REPO / "tests" / "fixtures" / "idp_samples"


def _run(src: Path, store: MemoryStore | CompactStore,
         enricher: Enricher) -> tuple[list[object], dict[str, object]]:
    pipeline = Pipeline(enricher, DEFAULT_POLICY)
    out = Outputs()
    for n, line in enumerate(src.read_bytes().splitlines(), start=1):
        pipeline.process(line, {"file": src.name, "line": n}, store, out)
    return ([out.commands, out.audit, out.alerts, out.dead],
            pipeline.stats.summary(sessions=len(store)))


@pytest.mark.parametrize("src", [DEMO, IDP / "auth0.jsonl", IDP / "okta.jsonl"],
                         ids=lambda p: p.name)
@pytest.mark.parametrize("hot", [1, 3, 50])
def test_tiny_hot_sets_give_the_same_outputs(src: Path, hot: int, enricher: Enricher) -> None:
    expected = _run(src, MemoryStore(), enricher)
    store = CompactStore(hot_baselines=hot, hot_profiles=hot)
    assert _run(src, store, enricher) == expected
    plain = MemoryStore()
    _run(src, plain, enricher)
    assert sorted(store.values(), key=lambda b: b.session_id) == sorted(
        plain.values(), key=lambda b: b.session_id)
    assert sorted(store.profiles(), key=lambda p: p.user) == sorted(
        plain.profiles.values(), key=lambda p: p.user)


def test_cold_entries_are_bytes_and_come_back(enricher: Enricher) -> None:
    store = CompactStore(hot_baselines=2, hot_profiles=2)
    _run(DEMO, store, enricher)
    assert len(store) > 2
    key = next(iter(store._baselines._cold))
    assert isinstance(store._baselines._cold[key], bytes)
    base = store.get(key)
    assert base is not None and base.session_id == key
    assert store.get(key) is base  # hot again: the engine's updates stay
    assert store.get("nope") is None and store.get_profile("nope") is None
