"""Baseline serialization for the state store and changelog."""

from __future__ import annotations

import orjson
import pytest

from detectors import DEFAULT_POLICY, evaluate
from detectors.engine import dedup_key
from tests.factories import event
from worker.codec import baseline_from_bytes, baseline_to_bytes


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


def test_unknown_format_is_an_error() -> None:
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
