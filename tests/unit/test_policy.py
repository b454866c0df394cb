"""Policy parsing: defaults, validation errors, content hash."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors.policy import DEFAULT_POLICY, PolicyError, policy_from_mapping
from worker.policy_file import load_policy

REPO = Path(__file__).resolve().parents[2]


def test_defaults_follow_the_issue() -> None:
    p = DEFAULT_POLICY
    assert p.absolute_lifetime_ms == 7 * 24 * 3_600_000
    assert p.idle_lifetime_ms == 3 * 24 * 3_600_000
    assert p.detector("asn_binding").action == "revoke"
    assert p.detector("asn_binding").reason == (
        "Invalid network change. Login again from a trusted network")
    assert p.detector("ip_binding").action == "alert"
    assert p.detector("ua_drift").action == "revoke"
    assert p.detector("ua_drift").downgrade_action == "alert"


def test_version_is_a_content_hash() -> None:
    a = policy_from_mapping({"detectors": {"ip_binding": {"action": "revoke"}}})
    b = policy_from_mapping({"detectors": {"ip_binding": {"action": "revoke"}}})
    assert a.version == b.version != DEFAULT_POLICY.version
    assert a.version.startswith("sha256:")


@pytest.mark.parametrize(("raw", "message"), [
    ({"detectors": {"ip_binding": {"action": "block"}}}, "action must be one of"),
    ({"detectors": {"nope": {}}}, "unknown detectors"),
    ({"tenant": {"absolute_lifetime_hours": -1}}, "positive number of hours"),
    ({"allow": {"cidrs": ["10.0.0.0/33"]}}, "allow.cidrs"),
    ({"allow": {"asns": ["ASX"]}}, "not an AS number"),
    ({"cookie_rules": [{"match": {"groups": ["a"]}, "mode": "forever"}]}, "mode must be"),
    ({"cookie_rules": [{"match": {}}]}, "has no conditions"),
    ({"expiry_rules": [{"match": {"groups": ["a"]}}]}, "sets neither"),
    ({"surprise": 1}, "unknown policy sections"),
    ({"detectors": {"ua_drift": {"colour": "red"}}}, "unknown keys"),
])
def test_invalid_policies_are_rejected_with_a_reason(raw: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        policy_from_mapping(raw)


def test_bundled_example_policy_loads() -> None:
    policy = load_policy(REPO / "data" / "policy.example.toml")
    assert policy.detector("ip_binding").action in ("alert", "revoke")
    assert policy.cookie_rules


def test_unreadable_or_invalid_policy_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[detectors\n")
    with pytest.raises(PolicyError, match="not valid TOML"):
        load_policy(bad)
