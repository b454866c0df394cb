"""The decision core: detectors, policy actions, expiry and cookie rules."""

from __future__ import annotations

from typing import Any

import pytest

from detectors import DEFAULT_POLICY, Baseline, Decision, evaluate, policy_from_mapping
from detectors.policy import Policy
from detectors.records import command_id
from detectors.timefmt import format_time, parse_time
from tests.factories import (
    CHROME_100_MAC,
    CHROME_120_MAC,
    CHROME_120_WIN,
    CHROME_121_MAC,
    DAY,
    FIREFOX_WIN,
    HOUR,
    MINUTE,
    T0,
    event,
)


def run(events: list[Any], policy: Policy = DEFAULT_POLICY) -> tuple[list[Decision], Baseline]:
    base: Baseline | None = None
    decisions = []
    for ev in events:
        d = evaluate(ev, base, policy)
        base = d.baseline
        decisions.append(d)
    assert base is not None
    return decisions, base


def commands(decisions: list[Decision]) -> list[dict[str, Any]]:
    return [c for d in decisions for c in d.commands]


def types(decisions: list[Decision]) -> list[str]:
    return [c["type"] for c in commands(decisions)]


# --- the seed's four use cases --------------------------------------------------------------


def test_seed_asn_change_revokes_the_session() -> None:
    ds, base = run([event(1), event(2, ip="216.160.83.56", asn=209, kind="silent_auth")])
    [cmd] = commands(ds)
    assert cmd["type"] == "revoke_session"
    assert cmd["reason"] == "Invalid network change. Login again from a trusted network"
    assert cmd["preserve_refresh_tokens"] is False
    assert cmd["cause_event_id"] == "evt-s-1-2"
    assert cmd["command_id"] == command_id("evt-s-1-2", "revoke_session")
    detectors = {d["detector"]: d["evidence"] for d in cmd["detections"]}
    assert detectors["asn_binding"]["initial_asn"] == 29518
    assert detectors["asn_binding"]["current_asn"] == 209
    assert base.revoked
    [aud] = ds[1].audit
    assert aud["type"] == "session_revoked"
    assert aud["session_id"] == "s-1"
    assert aud["description"] == cmd["reason"]
    assert aud["details"]["policy_version"] == DEFAULT_POLICY.version


def test_seed_ip_change_revokes_under_a_policy_that_says_so() -> None:
    policy = policy_from_mapping({"detectors": {"ip_binding": {"action": "revoke"}}})
    ds, _ = run([event(1), event(2, ip="89.160.20.113")], policy)  # same ASN, other IP
    [cmd] = commands(ds)
    assert cmd["type"] == "revoke_session"
    assert cmd["reason"] == "Invalid IP change"
    assert cmd["detections"][0]["evidence"] == {
        "initial_ip": "89.160.20.112", "current_ip": "89.160.20.113",
        "initial_asn": 29518, "current_asn": 29518, "same_asn": True}


def test_ip_change_inside_one_network_only_alerts_by_default() -> None:
    ds, base = run([event(1), event(2, ip="89.160.20.113"), event(3, ip="89.160.20.113")])
    assert commands(ds) == []
    assert not base.revoked
    assert [len(d.alerts) for d in ds] == [0, 1, 0]  # one alert per new IP, not per event
    alert = ds[1].alerts[0]
    assert alert["class_uid"] == 2004
    assert alert["unmapped"]["sessionwarden"]["finding_action"] == "alert"
    assert alert["disposition"] == "Detected"
    current, baseline = alert["evidences"]
    assert current["src_endpoint"]["ip"] == "89.160.20.113"
    assert baseline["src_endpoint"]["ip"] == "89.160.20.112"


def test_seed_connection_timeout_sets_absolute_expiry_from_created_at() -> None:
    created = T0 - 30 * MINUTE
    ds, base = run([event(1, created_at=created, connection_meta={"session_timeout": "3600000"})])
    [cmd] = commands(ds)
    assert cmd["type"] == "set_expires_at"
    assert cmd["expires_at"] == format_time(created + HOUR)
    assert cmd["clamped"] is False
    assert base.expires_at == created + HOUR
    assert ds[0].audit[0]["type"] == "session_expires_at_set"


def test_seed_organization_idle_timeout_sets_idle_expiry_on_each_interaction() -> None:
    meta = {"idle_session_timeout": "900000"}
    ds, _ = run([event(1, org_meta=meta), event(2, kind="silent_auth"),
                 event(5, kind="token_refresh")])
    cmds = commands(ds)
    assert [c["type"] for c in cmds] == ["set_idle_expires_at"] * 3
    assert [c["idle_expires_at"] for c in cmds] == [
        format_time(T0 + n * MINUTE + 15 * MINUTE) for n in (1, 2, 5)]


# --- expiry precedence and limits -----------------------------------------------------------


def test_absolute_expiry_above_tenant_limit_is_clamped_with_a_w_event() -> None:
    ds, _ = run([event(1, connection_meta={"session_timeout": str(30 * DAY)})])
    [cmd] = commands(ds)
    assert cmd["expires_at"] == format_time(T0 + 7 * DAY)
    assert cmd["clamped"] is True
    assert cmd["requested"] == format_time(T0 + 30 * DAY)
    assert [a["type"] for a in ds[0].audit] == ["session_expires_at_set", "w"]
    assert "clamped" in ds[0].audit[1]["description"]


def test_idle_expiry_above_tenant_idle_limit_is_clamped() -> None:
    policy = policy_from_mapping({"tenant": {"idle_lifetime_hours": 1}})
    ds, _ = run([event(1, org_meta={"idle_session_timeout": str(2 * HOUR)})], policy)
    [cmd] = commands(ds)
    assert cmd["idle_expires_at"] == format_time(T0 + MINUTE + HOUR)
    assert [a["type"] for a in ds[0].audit] == ["session_idle_expires_at_set", "w"]


def test_earliest_expiry_wins_among_connection_and_policy_rules() -> None:
    policy = policy_from_mapping({"expiry_rules": [
        {"name": "admins-4h", "match": {"groups": ["admins"]}, "absolute_timeout_ms": 4 * HOUR},
        {"name": "admins-idle", "match": {"groups": ["admins"]}, "idle_timeout_ms": 5 * MINUTE},
    ]})
    ds, _ = run([event(1, groups=("admins",), connection_meta={"session_timeout": 8 * HOUR},
                       org_meta={"idle_session_timeout": 15 * MINUTE})], policy)
    by_type = {c["type"]: c for c in commands(ds)}
    assert by_type["set_expires_at"]["expires_at"] == format_time(T0 + 4 * HOUR)
    assert by_type["set_expires_at"]["reason"] == "expiry rule admins-4h"
    assert by_type["set_idle_expires_at"]["idle_expires_at"] == format_time(
        T0 + MINUTE + 5 * MINUTE)


def test_absolute_expiry_is_not_reissued_when_unchanged() -> None:
    meta = {"session_timeout": "3600000"}
    ds, _ = run([event(1, connection_meta=meta), event(2, kind="silent_auth", connection_meta=meta),
                 event(3, kind="token_refresh")])
    assert types(ds) == ["set_expires_at"]


@pytest.mark.parametrize(("absolute", "idle"), [
    ("soon", -5), ("²", True), ("9" * 30, 10**300), ("", 1e300)])
def test_unusable_metadata_timeouts_are_ignored(absolute: object, idle: object) -> None:
    ds, _ = run([event(1, connection_meta={"session_timeout": absolute},
                       org_meta={"idle_session_timeout": idle})])
    assert commands(ds) == []


def test_cookie_mode_last_matching_rule_wins_and_is_set_once() -> None:
    policy = policy_from_mapping({"cookie_rules": [
        {"name": "contractors", "match": {"groups": ["contractors"]}, "mode": "non-persistent"},
        {"name": "office", "match": {"cidrs": ["89.160.0.0/17"]}, "mode": "persistent"},
    ]})
    ds, base = run([event(1, groups=("contractors",)), event(2, groups=("contractors",))], policy)
    [cmd] = commands(ds)
    assert cmd["type"] == "set_cookie_mode"
    assert cmd["mode"] == "persistent"
    assert base.cookie_mode == "persistent"
    ds, _ = run([event(1, groups=("contractors",), ip="216.160.83.56", asn=209)], policy)
    assert commands(ds)[0]["mode"] == "non-persistent"


# --- revoked, duplicates, logout, mid-stream ------------------------------------------------


def test_revoked_session_gets_no_further_commands() -> None:
    meta = {"idle_session_timeout": "900000"}
    ds, base = run([event(1, org_meta=meta), event(2, ip="216.160.83.56", asn=209),
                    event(3, ip="1.128.0.1", asn=1221, org_meta=meta),
                    event(4, org_meta=meta)])
    assert types(ds) == ["set_idle_expires_at", "revoke_session"]
    assert ds[2].suppressed == ds[3].suppressed == "session already revoked"
    assert ds[2].alerts == [] and ds[3].audit == []
    assert base.revoked_at == T0 + 2 * MINUTE


def test_redelivered_event_never_produces_a_second_command() -> None:
    second = event(2, ip="216.160.83.56", asn=209)
    ds, _ = run([event(1), second, second])
    assert types(ds) == ["revoke_session"]
    assert ds[2].duplicate
    meta = {"idle_session_timeout": "900000"}
    again = event(2, kind="silent_auth", org_meta=meta)
    ds, _ = run([event(1, org_meta=meta), again, again, again])
    assert types(ds) == ["set_idle_expires_at"] * 2
    assert [d.duplicate for d in ds] == [False, False, True, True]


def test_first_event_mid_stream_sets_the_baseline() -> None:
    created = T0 - 2 * DAY
    ds, base = run([event(1, kind="token_refresh", created_at=created),
                    event(2, kind="token_refresh", ip="216.160.83.56", asn=209)])
    assert base.first_event_type == "token_refresh"
    assert base.created_at == created
    assert base.authenticated_at is None
    assert types(ds) == ["revoke_session"]


def test_session_created_at_defaults_to_first_seen_time() -> None:
    ds, base = run([event(1, created_at=None, connection_meta={"session_timeout": "60000"})])
    assert base.created_at == T0 + MINUTE
    assert commands(ds)[0]["expires_at"] == format_time(T0 + 2 * MINUTE)


def test_logout_issues_nothing_and_is_remembered() -> None:
    ds, base = run([event(1), event(2, kind="logout", ip="216.160.83.56", asn=209)])
    assert commands(ds) == [] and ds[1].alerts == []
    assert base.logged_out


def test_unknown_asn_on_either_side_does_not_trip_asn_binding() -> None:
    ds, _ = run([event(1, asn=None), event(2, ip="216.160.83.56", asn=209)])
    assert "revoke_session" not in types(ds)
    ds, _ = run([event(1), event(2, ip="10.0.0.1", asn=None)])
    assert "revoke_session" not in types(ds)


def test_allow_listed_networks_never_trip_network_detectors() -> None:
    policy = policy_from_mapping({"allow": {"asns": ["AS209"], "cidrs": ["1.128.0.0/11"]}})
    ds, _ = run([event(1), event(2, ip="216.160.83.56", asn=209),
                 event(3, ip="1.128.0.1", asn=1221)], policy)
    assert commands(ds) == [] and all(d.alerts == [] for d in ds)


def test_detector_off_yields_no_finding() -> None:
    policy = policy_from_mapping({"detectors": {"asn_binding": {"action": "off"},
                                                "ip_binding": {"action": "off"}}})
    ds, _ = run([event(1), event(2, ip="216.160.83.56", asn=209)], policy)
    assert commands(ds) == [] and ds[1].findings == []


def test_preserve_refresh_tokens_comes_from_policy() -> None:
    policy = policy_from_mapping({"detectors": {"asn_binding": {
        "preserve_refresh_tokens": True, "reason": "custom"}}})
    ds, _ = run([event(1), event(2, ip="216.160.83.56", asn=209)], policy)
    [cmd] = commands(ds)
    assert cmd["preserve_refresh_tokens"] is True
    assert cmd["reason"] == "custom"


def test_revoke_reports_every_finding_and_one_alert_each() -> None:
    ds, _ = run([event(1), event(2, ip="216.160.83.56", asn=209, ua=FIREFOX_WIN)])
    [cmd] = commands(ds)
    assert [d["detector"] for d in cmd["detections"]] == ["asn_binding", "ip_binding", "ua_drift"]
    assert len(ds[1].alerts) == 3
    assert {a["unmapped"]["sessionwarden"]["command_id"] for a in ds[1].alerts} == {
        cmd["command_id"]}
    assert {a["disposition"] for a in ds[1].alerts} == {"Access Revoked"}


# --- user-agent drift -----------------------------------------------------------------------


@pytest.mark.parametrize(("later", "expected"), [
    (CHROME_121_MAC, None),                      # major upgrade: browser update
    ("Chrome 120.0.1 / Mac OS X 10.15.7", None),  # Auth0 summary form, patch upgrade
    (FIREFOX_WIN, "device_change"),              # family and OS change
    (CHROME_120_WIN, "device_change"),           # same browser, other OS
    (CHROME_100_MAC, "downgrade"),               # major downgrade
])
def test_ua_drift_tells_updates_from_device_changes(later: str, expected: str | None) -> None:
    ds, _ = run([event(1), event(2, ua=later)])
    kinds = [f.kind for f in ds[1].findings if f.detector == "ua_drift"]
    assert kinds == ([expected] if expected else [])


def test_ua_device_change_revokes_and_downgrade_alerts_by_default() -> None:
    ds, _ = run([event(1), event(2, ua=FIREFOX_WIN)])
    assert types(ds) == ["revoke_session"]
    ds, base = run([event(1), event(2, ua=CHROME_100_MAC), event(3, ua=CHROME_100_MAC)])
    assert types(ds) == []
    assert [len(d.alerts) for d in ds] == [0, 1, 0]
    assert not base.revoked


def test_ua_downgrade_is_measured_against_the_newest_version_seen() -> None:
    ds, _ = run([event(1), event(2, ua=CHROME_121_MAC), event(3, ua=CHROME_120_MAC)])
    assert [f.kind for f in ds[2].findings] == ["downgrade"]


def test_events_without_user_agent_skip_ua_drift() -> None:
    ds, _ = run([event(1), event(2, ua=None)])
    assert ds[1].findings == []


def test_anonymous_network_alerts_once_per_address() -> None:
    flags = ("anonymous_vpn", "tor_exit_node")
    ds, _ = run([event(1), event(2, anonymous=flags, ip="89.160.20.114"),
                 event(3, anonymous=flags, ip="89.160.20.114")])
    assert [[f.detector for f in d.findings] for d in ds] == [
        [], ["ip_binding", "anonymous_network"], []]


# --- determinism ----------------------------------------------------------------------------


def test_same_input_same_decisions() -> None:
    evs = [event(1, org_meta={"idle_session_timeout": "900000"}), event(2, ua=CHROME_100_MAC),
           event(3, ip="216.160.83.56", asn=209)]
    first, _ = run(evs)
    second, _ = run(evs)
    for a, b in zip(first, second, strict=True):
        assert (a.commands, a.audit, a.alerts) == (b.commands, b.audit, b.alerts)


def test_event_time_is_now() -> None:
    ds, _ = run([event(1, at=parse_time("2020-01-01T00:00:00Z"),
                       org_meta={"idle_session_timeout": "60000"})])
    assert commands(ds)[0]["idle_expires_at"] == "2020-01-01T00:01:00.000Z"


# --- impossible travel ----------------------------------------------------------------------

LINKOPING = (58.4167, 15.6167)
MILTON_WA = (47.2513, -122.3149)
STOCKHOLM = (59.3293, 18.0686)


def test_impossible_travel_alerts_on_a_transatlantic_hop_in_minutes() -> None:
    ds, _ = run([event(1, geo=LINKOPING), event(3, geo=MILTON_WA, ip="89.160.20.120")])
    [f] = [f for f in ds[1].findings if f.detector == "impossible_travel"]
    assert f.action == "alert" and f.severity == "high"
    assert 7000 < f.evidence["distance_km"] < 8000
    assert f.evidence["elapsed_s"] == 120
    assert f.evidence["speed_kmh"] > 100_000


@pytest.mark.parametrize(("geo", "minutes"), [
    (MILTON_WA, 12 * 60),  # ~7,700 km in 12 h: a flight
    (STOCKHOLM, 1),        # ~170 km: within geolocation error
    (None, 1),             # no location
])
def test_possible_travel_is_quiet(geo: tuple[float, float] | None, minutes: int) -> None:
    ds, _ = run([event(1, geo=LINKOPING), event(1 + minutes, geo=geo, ip="89.160.20.120")])
    assert all(f.detector != "impossible_travel" for f in ds[1].findings)


def test_impossible_travel_is_judged_hop_by_hop_and_can_revoke() -> None:
    policy = policy_from_mapping({"detectors": {"impossible_travel": {
        "action": "revoke", "max_speed_kmh": 900}}})
    ds, base = run([event(1, geo=LINKOPING), event(2, ua=None),  # unlocated event in between
                    event(3, geo=MILTON_WA, ip="89.160.20.120")], policy)
    assert types(ds) == ["revoke_session"]
    assert base.revoked
