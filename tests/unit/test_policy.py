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
    assert p.detector("asn_binding").action == "step_up"
    assert p.detector("asn_binding").action_for("known_network") == "off"
    for name in ("ua_drift", "anonymous_network", "hosting_network", "impossible_travel",
                 "automation_client", "device_token_change"):
        assert p.detector(name).action == "revoke", name
    assert p.detector("asn_binding").reason == (
        "Invalid network change. Login again from a trusted network")
    assert p.detector("ip_binding").action == "off"
    assert p.detector("ua_drift").action == "revoke"
    assert p.detector("ua_drift").downgrade_action == "alert"


def test_version_is_a_content_hash() -> None:
    a = policy_from_mapping({"detectors": {"ip_binding": {"action": "revoke"}}})
    b = policy_from_mapping({"detectors": {"ip_binding": {"action": "revoke"}}})
    assert a.version == b.version != DEFAULT_POLICY.version
    assert a.version.startswith("sha256:")


@pytest.mark.parametrize(("raw", "message"), [
    ({"detectors": {"ip_binding": {"action": "block"}}},
     r"detectors\.ip_binding\.action: must be 'revoke', 'step_up', 'alert' or 'off', "
     r"got 'block'"),
    ({"detectors": {"nope": {}}}, r"detectors\.nope: unknown key"),
    ({"tenant": {"absolute_lifetime_hours": -1}}, "absolute_lifetime_hours: must be a positive"),
    ({"tenant": {"idle_lifetime_hours": "72"}}, "idle_lifetime_hours"),
    ({"allow": {"cidrs": ["10.0.0.0/33"]}}, r"allow\.cidrs\[0\]"),
    ({"allow": {"asns": ["ASX"]}}, "not an AS number"),
    ({"allow": {"asns": [True]}}, "not an AS number"),
    ({"cookie_rules": [{"match": {"groups": ["a"]}, "mode": "forever"}]},
     r"cookie_rules\[0\]\.mode: must be 'persistent' or 'non-persistent'"),
    ({"cookie_rules": [{"match": {}}]}, "has no conditions"),
    ({"expiry_rules": [{"match": {"groups": ["a"]}}]}, "sets neither"),
    ({"expiry_rules": [{"match": {"groups": ["a"]}, "idle_timeout_ms": True}]},
     "idle_timeout_ms"),
    ({"surprise": 1}, "surprise: unknown key"),
    ({"detectors": {"ua_drift": {"colour": "red"}}}, r"ua_drift\.colour: unknown key"),
    ({"detectors": {"ua_drift": {"preserve_refresh_tokens": "yes"}}},
     "preserve_refresh_tokens"),
])
def test_invalid_policies_are_rejected_with_a_reason(raw: dict[str, object], message: str) -> None:
    with pytest.raises(PolicyError, match=message):
        policy_from_mapping(raw)


def test_bundled_example_policy_shows_the_defaults() -> None:
    """Its header promises that missing keys take the values it shows."""
    policy = load_policy(REPO / "data" / "policy.example.toml")
    assert policy.detectors == DEFAULT_POLICY.detectors
    assert policy.profile == DEFAULT_POLICY.profile
    assert (policy.absolute_lifetime_ms, policy.idle_lifetime_ms,
            policy.min_idle_extension_ms) == (DEFAULT_POLICY.absolute_lifetime_ms,
                                              DEFAULT_POLICY.idle_lifetime_ms,
                                              DEFAULT_POLICY.min_idle_extension_ms)
    assert policy.cookie_rules and policy.expiry_rules  # the examples beyond the defaults


def test_unreadable_or_invalid_policy_file(tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="cannot read"):
        load_policy(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[detectors\n")
    with pytest.raises(PolicyError, match="not valid TOML"):
        load_policy(bad)


@pytest.mark.parametrize(("toml", "message"), [
    # The five typos a new user made (issue 8): each was silently ignored before.
    ("[tenant]\nabsolute_lifetime_hour = 5\n",
     "tenant.absolute_lifetime_hour: unknown key (did you mean 'absolute_lifetime_hours'?)"),
    ("[allow]\ncidr = ['10.0.0.0/8']\n", "allow.cidr: unknown key (did you mean 'cidrs'?)"),
    ("[[expiry_rules]]\nname = 'admins'\nmatch = { groups = ['admins'] }\n"
     "absolute_timout_ms = 5\n",
     "expiry_rules[0] (admins).absolute_timout_ms: unknown key "
     "(did you mean 'absolute_timeout_ms'?)"),
    ("[[expiry_rules]]\nmatch = { grups = ['admins'] }\nidle_timeout_ms = 5\n",
     "expiry_rules[0].match.grups: unknown key (did you mean 'groups'?)"),
    ("[[cookie_rules]]\nmatch = { groups = ['x'] }\nmod = 'persistent'\n",
     "cookie_rules[0].mod: unknown key (did you mean 'mode'?)"),
])
def test_typos_name_the_key_and_the_file(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "policy.toml"
    path.write_text(toml)
    with pytest.raises(PolicyError) as info:
        load_policy(path)
    assert str(info.value).startswith(f"policy file {path}: ")
    assert message in str(info.value)


def test_enforcement_section_does_not_change_the_decision_version() -> None:
    with_rails = policy_from_mapping({"enforcement": {"dry_run": True}})
    assert with_rails.version == DEFAULT_POLICY.version
