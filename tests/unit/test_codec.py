"""Baseline serialization for the state store and changelog."""

from __future__ import annotations

from dataclasses import fields, replace
from pathlib import Path

import msgspec
import orjson
import pytest

from detectors import DEFAULT_POLICY, evaluate
from detectors.engine import dedup_key
from detectors.model import PROFILE_KINDS, Baseline, UserProfile
from tests.factories import event
from worker.codec import (
    VERSION_BYTE,
    baseline_from_bytes,
    baseline_to_bytes,
    profile_from_bytes,
    profile_to_bytes,
)
from worker.enrich import Enricher
from worker.pipeline import MemoryStore

DEMO = Path(__file__).resolve().parents[2] / "data" / "demo" / "events.jsonl"


def test_baseline_round_trip_is_compact_and_exact() -> None:
    base = evaluate(event(1), None, DEFAULT_POLICY).baseline
    base = evaluate(event(2, ua="Chrome 121.0.0 / Mac OS X 10.15.7"), base,
                    DEFAULT_POLICY).baseline
    data = baseline_to_bytes(base)
    assert baseline_from_bytes(data) == base
    assert isinstance(baseline_from_bytes(data).last_agent_version, tuple)
    assert len(data) < 0.6 * len(orjson.dumps(base))  # positional, not named


def test_object_form_is_still_readable() -> None:
    base = evaluate(event(1), None, DEFAULT_POLICY).baseline
    assert baseline_from_bytes(orjson.dumps(base)) == base


def test_unknown_json_format_is_an_error() -> None:
    with pytest.raises(ValueError, match="unknown baseline format"):
        baseline_from_bytes(b'[99, "x"]')


def test_long_event_ids_are_remembered_as_short_hashes() -> None:
    auth0_id = "90020211103032530111223343147286033102509916061341170306"
    assert dedup_key("evt-1") == "evt-1"
    assert len(dedup_key(auth0_id)) == 16
    assert dedup_key(auth0_id) == dedup_key(auth0_id) != dedup_key(auth0_id[:-1] + "7")
    first = event(1, event_id=auth0_id)
    base = evaluate(first, None, DEFAULT_POLICY).baseline
    assert evaluate(first, base, DEFAULT_POLICY).duplicate


# --- Format 2 (binary) --------------------------------------------------------------------

def _v1_baseline(base: Baseline) -> bytes:
    """The JSON encoding stored before format 2 (`[1, field, ...]`)."""
    return orjson.dumps([1, *(getattr(base, f.name) for f in fields(Baseline))])


def _v1_profile(profile: UserProfile) -> bytes:
    kinds = [[[k, s.first, s.last, s.sessions, s.session] for k, s in getattr(
        profile, kind).items()] for kind in PROFILE_KINDS]
    return orjson.dumps([1, profile.user, profile.updated_at, *kinds])


def _demo_state(enricher: Enricher) -> MemoryStore:
    from worker.pipeline import Outputs, Pipeline  # noqa: PLC0415

    pipeline = Pipeline(enricher, DEFAULT_POLICY)
    store, out = MemoryStore(), Outputs()
    for n, line in enumerate(DEMO.read_bytes().splitlines(), start=1):
        pipeline.process(line, {"line": n}, store, out)
        out.clear()
    return store


def test_every_demo_baseline_and_profile_round_trips(enricher: Enricher) -> None:
    store = _demo_state(enricher)
    assert len(store) > 50 and store.profiles
    for base in store.values():
        data = baseline_to_bytes(base)
        assert data[:1] == VERSION_BYTE
        assert baseline_from_bytes(data) == base
        assert baseline_from_bytes(_v1_baseline(base)) == base  # old records still load
        assert len(data) * 2 <= len(_v1_baseline(base)) + 64
    for profile in store.profiles.values():
        data = profile_to_bytes(profile)
        assert profile_from_bytes(data) == profile
        assert profile_from_bytes(_v1_profile(profile)) == profile


def test_binary_baseline_keeps_odd_values_exact() -> None:
    base = evaluate(event(1), None, DEFAULT_POLICY).baseline
    odd = replace(
        base, initial_ip="::ffff:1.2.3.4", last_ip="not-an-ip",
        seen_ips=["10.0.0.1", "2001:db8::1"],
        initial_user_agent="Mozilla/5.0 (\x01odd) Gecko/20100101 Firefox/1",
        last_user_agent="Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
                        " Chrome/1.0.0.0 Safari/537.36 Édg/\u2603",
        recent_event_ids=["0123456789abcdef", "0123456789ABCDEF", "evt-1", "evt-12", "", "x"],
        position=("topic", 3, 2**40, 0), last_agent_version=(1, 2, 3), authenticated_at=0,
        expires_at=base.created_at - 5, revoked=True, revoked_at=base.created_at + 1,
        step_up="network_change:AS1", step_up_at=2**53, last_latitude=-33.8688,
        last_longitude=151.2093, events_seen=0, accepted_networks=[], logged_out=False)
    assert baseline_from_bytes(baseline_to_bytes(odd)) == odd
    same = replace(base, last_user_agent=base.initial_user_agent)
    assert baseline_from_bytes(baseline_to_bytes(same)) == same
    none = replace(base, initial_user_agent=None, last_user_agent=None)
    assert baseline_from_bytes(baseline_to_bytes(none)) == none


def test_binary_formats_reject_garbage() -> None:
    with pytest.raises(ValueError, match="unknown baseline format"):
        baseline_from_bytes(VERSION_BYTE + msgspec.msgpack.encode({"a": 1}))
    with pytest.raises(ValueError, match="unknown profile format"):
        profile_from_bytes(VERSION_BYTE + msgspec.msgpack.encode([1]))
