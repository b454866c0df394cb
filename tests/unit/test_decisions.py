"""Graduated response on per-user profiles (issue 9): each rule and signal combination.

Why: the engine used to revoke every phone leaving Wi-Fi and to let Tor and
impossible travel through with an alert. Each test builds the user's
history first (earlier sessions), then a session, and checks the response
level, the reason and the evidence the decision gives.
"""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from detectors import DEFAULT_POLICY, evaluate, policy_from_mapping
from detectors.model import Baseline, Decision, EnrichedEvent, UserProfile
from detectors.policy import Policy
from detectors.profile import describe, session_tag
from tests.factories import CHROME_120_MAC, DAY, FIREFOX_WIN, HOUR, MINUTE, T0, event

HOME = {"ip": "89.160.20.112", "asn": 29518, "country": "SE"}
CELL = {"ip": "1.128.0.7", "asn": 1221, "country": "SE", "mobile": True}
CELL2 = {"ip": "1.128.0.99", "asn": 1221, "country": "SE", "mobile": True}
OTHER_ISP = {"ip": "216.160.83.56", "asn": 209, "country": "SE"}
ABROAD = {"ip": "175.16.199.3", "asn": 4837, "country": "CN"}
CLOUD = {"ip": "54.1.2.3", "asn": 16509, "country": "SE", "hosting": True}
CURL = "curl/8.4.0"


class User:
    """One user's sessions decided in order against one profile, as the pipeline does."""

    def __init__(self, policy: Policy = DEFAULT_POLICY) -> None:
        self.policy = policy
        self.profile = UserProfile("acme\x1fauth0|42")
        self.baselines: dict[str, Baseline] = {}

    def __call__(self, ev: EnrichedEvent) -> Decision:
        sid = ev.event.session.id
        d = evaluate(ev, self.baselines.get(sid), self.policy, self.profile)
        self.baselines[sid] = d.baseline
        assert d.profile is self.profile
        return d

    def history(self, days: int, *places: dict[str, Any]) -> None:
        """`days` earlier one-day sessions over `places`, each day starting at the next one.

        A session that starts on a network uses it without a finding; a move
        to a network the user never logged in from asks for a step-up, and is
        not learned until the user re-authenticates there.
        """
        for day in range(days):
            at = T0 - (days - day) * DAY
            turn = places[day % len(places):] + places[:day % len(places)]
            for n, place in enumerate(turn):
                self(event(n, session=f"old-{day}", at=at + n * 10 * MINUTE,
                           kind="login" if n == 0 else "silent_auth", **place))


def acted(d: Decision) -> list[str]:
    return [c["type"] for c in d.commands if c["type"] in ("revoke_session",
                                                          "require_reauthentication")]


# --- per-user memory -----------------------------------------------------------------------


def test_a_network_the_user_used_before_is_no_evidence_at_all() -> None:
    user = User()
    user.history(5, HOME, CELL)  # the phone goes between Wi-Fi and its carrier every day
    user(event(1, **HOME))
    d = user(event(2, kind="silent_auth", **CELL))
    assert acted(d) == [] and d.alerts == []
    [signal] = [s for s in d.signals if s["signal"] == "network"]
    assert signal["assessment"] == "known_network"
    assert signal["evidence"] == "AS1221 first seen for this user 4 days ago, 4 sessions"


def test_a_new_network_asks_for_a_step_up_not_a_revoke() -> None:
    user = User()
    user.history(3, HOME)
    user(event(1, **HOME))
    d = user(event(2, kind="silent_auth", **OTHER_ISP))
    assert acted(d) == ["require_reauthentication"]
    cmd = d.commands[0]
    assert cmd["reason"] == "Invalid network change. Login again from a trusted network"
    assert "preserve_refresh_tokens" not in cmd
    assert cmd["detections"][0]["kind"] == "new_network"
    assert cmd["detections"][0]["evidence"]["profile"] == "AS209 never seen for this user"
    assert d.audit[0]["type"] == "session_reauthentication_required"
    assert not d.baseline.revoked, "a stepped-up session keeps receiving commands"


def test_kinds_of_network_change_and_their_policy_actions() -> None:
    policy = policy_from_mapping({"detectors": {"asn_binding": {
        "mobile_network": "alert", "new_country": "revoke", "same_operator": "off"}}})
    cases = [
        (CELL, "mobile_network", "alert"),
        (ABROAD, "new_country", "revoke"),
        ({"ip": "10.9.9.9", "asn": None, "country": None}, "unknown_network", "step_up"),
        (OTHER_ISP, "new_network", "step_up"),
    ]
    for place, kind, action in cases:
        user = User(policy)
        user(event(1, **HOME))
        d = user(event(2, kind="silent_auth", **place))
        assert [(f.detector, f.kind, f.action) for f in d.findings] == [
            ("asn_binding", kind, action)], kind


def test_same_operator_is_its_own_kind() -> None:
    user = User()
    user(event(1, ip="118.200.0.9", asn=3758, country="SG", operator="singtel"))
    d = user(event(2, kind="silent_auth", ip="115.66.0.9", asn=45143, country="SG",
                   mobile=True, operator="singtel"))
    assert [f.kind for f in d.findings] == ["same_operator"]


def test_the_profile_counts_sessions_forgets_old_entries_and_stays_bounded() -> None:
    policy = policy_from_mapping({"profile": {"ttl_days": 30, "max_networks": 3}})
    user = User(policy)
    for day, asn in enumerate((100, 101, 102, 103)):
        for n in range(3):  # three requests, one session
            user(event(n, session=f"d{day}", at=T0 + day * DAY + n * MINUTE,
                       ip=f"9.9.{day}.1", asn=asn))
    nets = user.profile.networks
    assert len(nets) == 3 and "AS100" not in nets, "least used, then oldest, goes first"
    assert nets["AS103"].sessions == 1, "sessions are counted, not requests"
    user(event(0, session="later", at=T0 + 40 * DAY, ip="9.9.9.9", asn=104))
    assert set(user.profile.networks) == {"AS104"}, "30 days unseen: forgotten"


def test_an_attackers_network_is_never_learned() -> None:
    user = User()
    user(event(1, **HOME))
    user(event(2, kind="silent_auth", **OTHER_ISP))  # stepped up, not accepted
    assert "AS209" not in user.profile.networks
    d = user(event(3, kind="silent_auth", ip="216.160.83.57", asn=209, country="SE"))
    assert acted(d) == [] and d.suppressed == "step-up pending", "one command per network"
    assert "AS209" not in user.profile.networks


def test_re_authentication_satisfies_the_step_up_and_the_network_is_kept() -> None:
    user = User()
    user(event(1, **HOME))
    user(event(2, kind="silent_auth", **OTHER_ISP))
    d = user(event(3, kind="login", authenticated_at=T0 + 3 * MINUTE, **OTHER_ISP))
    assert acted(d) == [] and d.baseline.step_up is None
    assert "AS209" in user.profile.networks
    assert acted(user(event(4, kind="silent_auth", ip="216.160.83.58", asn=209))) == []


# --- network classes -----------------------------------------------------------------------


def test_a_cloud_host_with_the_victims_exact_user_agent_is_revoked() -> None:
    user = User()
    user.history(3, HOME)
    user(event(1, **HOME))
    d = user(event(2, kind="silent_auth", **CLOUD))
    assert acted(d) == ["revoke_session"]
    assert d.commands[0]["reason"] == "Session used from a hosting or cloud network"


def test_a_session_that_starts_on_a_hosting_network_only_alerts() -> None:
    user = User()
    first = user(event(1, **CLOUD))
    assert [(f.detector, f.action) for f in first.findings] == [("hosting_network", "alert")]
    assert acted(user(event(2, kind="silent_auth", ip="54.1.2.4", asn=16509,
                            hosting=True))) == []


def test_allowlists_apply_to_the_starting_network_too() -> None:
    """A session that *starts* on the corporate VPN may go home (issue 9 item 4)."""
    policy = policy_from_mapping({"allow": {"cidrs": ["216.160.83.56/29"]}})
    user = User(policy)
    user(event(1, **OTHER_ISP))  # on the VPN
    assert acted(user(event(2, kind="silent_auth", ip="175.16.199.9", asn=4837,
                            country="SE"))) == []


def test_an_unchanged_address_is_never_a_network_change() -> None:
    """Panther A3/P1: only the ASN the sources give for the *same* IP differs."""
    user = User()
    user(event(1, ip="1.2.3.4", asn=123456))
    d = user(event(2, kind="silent_auth", ip="1.2.3.4", asn=263297))
    assert d.findings == [] and acted(d) == []


# --- devices ----------------------------------------------------------------------------------


def test_an_automation_client_on_a_browser_session_is_revoked() -> None:
    user = User()
    user(event(1, **HOME))
    d = user(event(2, kind="silent_auth", ua=CURL, **HOME))  # an infostealer on the device
    assert acted(d) == ["revoke_session"]
    assert d.commands[0]["reason"] == \
        "Session used by an automation client instead of a browser"
    script = User()
    script(event(1, ua=CURL, **HOME))
    assert acted(script(event(2, kind="silent_auth", ua=CURL, **HOME))) == []


def test_a_device_token_change_is_revoked() -> None:
    user = User()
    user(event(1, device_token="dt-1", **HOME))
    assert acted(user(event(2, kind="silent_auth", device_token="dt-1", **HOME))) == []
    d = user(event(3, kind="silent_auth", device_token="dt-2", **HOME))
    assert [f.detector for f in d.findings] == ["device_token_change"]
    assert acted(d) == ["revoke_session"]


def test_the_idps_high_risk_verdict_is_passed_on() -> None:
    user = User()
    user(event(1, **HOME))
    d = user(event(2, kind="silent_auth", idp_risk="high", **HOME))
    assert [(f.detector, f.action) for f in d.findings] == [("idp_risk", "alert")]


# --- travel ---------------------------------------------------------------------------------

SAN_DIEGO = (32.7405, -117.0935)
SINGAPORE = (1.2929, 103.8547)
US_CENTROID = (37.751, -97.822)
CHICAGO = (41.8781, -87.6298)


def test_a_long_haul_flight_is_never_impossible() -> None:
    user = User()
    user(event(1, geo=SAN_DIEGO, ip="214.78.120.9", asn=721, country="US"))
    flight = (13_600 / 900 + 1) * HOUR  # the real distance at 900 km/h, plus boarding
    d = user(event(2, at=T0 + MINUTE + int(flight), kind="silent_auth", geo=SINGAPORE,
                   ip="214.0.0.9", asn=721, country="SG"))
    assert all(f.detector != "impossible_travel" for f in d.findings)


def test_impossible_travel_on_one_asn_is_revoked() -> None:
    user = User()
    user(event(1, geo=SAN_DIEGO, ip="214.78.120.9", asn=721, country="US"))
    d = user(event(20, kind="silent_auth", geo=SINGAPORE, ip="214.0.0.9", asn=721,
                   country="SG"))
    assert acted(d) == ["revoke_session"]
    assert d.commands[0]["reason"] == "Impossible travel between two requests of the session"


def test_the_accuracy_radius_is_taken_off_the_distance() -> None:
    """A carrier address at the US centroid (radius 1,000 km) is not a 1,000 km jump."""
    user = User()
    user.history(2, {"ip": "73.10.0.1", "asn": 7922, "country": "US"},
                 {"ip": "149.101.100.1", "asn": 6167, "country": "US"})
    user(event(1, geo=CHICAGO, accuracy_km=22, ip="73.10.0.1", asn=7922, country="US"))
    far: dict[str, Any] = {"geo": US_CENTROID, "ip": "149.101.100.1", "asn": 6167,
                           "country": "US", "kind": "silent_auth"}
    assert user(event(3, accuracy_km=1000, **far)).findings == []
    strict = User()
    strict(event(1, geo=CHICAGO, accuracy_km=22, ip="73.10.0.1", asn=7922, country="US"))
    assert [f.detector for f in strict(event(3, **far)).findings if f.detector ==
            "impossible_travel"] == ["impossible_travel"], "without the radius it would be"


def test_a_vpn_hop_does_not_become_the_sessions_last_place() -> None:
    """Panther P2: NY, then LA through a VPN (flagged), then NY again an hour later."""
    policy = policy_from_mapping({"detectors": {"anonymous_network": {"action": "alert"},
                                                "impossible_travel": {"action": "alert"}}})
    user = User(policy)
    ny, la = (40.71, -74.0), (34.05, -118.24)
    user(event(1, geo=ny, ip="12.12.12.10", asn=None, country="US"))
    hop = user(event(60, geo=la, ip="12.12.12.12", asn=None, country="US",
                     anonymous=("anonymous_vpn",)))
    assert "impossible_travel" in {f.detector for f in hop.findings}
    back = user(event(120, geo=ny, ip="12.12.12.10", asn=None, country="US"))
    assert back.findings == []


# --- explanations ------------------------------------------------------------------------------


def test_the_reason_names_the_strongest_cause_and_every_signal_is_explained() -> None:
    user = User()
    user.history(2, HOME)
    user(event(1, geo=(58.41, 15.62), **HOME))
    d = user(event(3, kind="silent_auth", geo=(39.9, 116.4), ua=FIREFOX_WIN, **ABROAD))
    assert acted(d) == ["revoke_session"]
    assert d.commands[0]["reason"] == "Device change detected. Login again"
    details = d.audit[0]["details"]
    names = {s["signal"] for s in details["signals"]}
    assert {"network", "device"} <= names
    network = next(s for s in details["signals"] if s["signal"] == "network")
    assert network["assessment"] == "new_country"
    assert network["evidence"] == "AS4837 never seen for this user"
    assert {x["detector"] for x in details["detections"]} >= {"asn_binding", "ua_drift",
                                                               "impossible_travel"}


def test_profile_evidence_in_words() -> None:
    profile = UserProfile("u")
    user = User()
    user.profile = profile
    for day in range(12):
        user(event(1, session=f"s{day}", at=T0 - 41 * DAY + day * DAY, ip="70.1.1.1",
                   asn=21928))
    seen = profile.networks["AS21928"]
    assert describe("AS21928", seen, T0) == "AS21928 first seen for this user 41 days ago, " \
        "12 sessions"


# --- properties --------------------------------------------------------------------------------

addresses = st.tuples(st.integers(1, 223), st.integers(0, 255), st.integers(0, 255)).map(
    lambda t: f"{t[0]}.{t[1]}.{t[2]}.1")


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 20), addresses, st.integers(1, 400),
                          st.sampled_from(["SE", "US", "CN", "BR", None]),
                          st.sampled_from([CHROME_120_MAC, FIREFOX_WIN, CURL]),
                          st.integers(0, 200 * 24 * 60)), max_size=120))
def test_profiles_stay_within_their_bounds_whatever_the_input(
        requests: list[tuple[int, str, int, str | None, str, int]]) -> None:
    policy = policy_from_mapping({"profile": {"max_networks": 4, "max_prefixes": 5,
                                              "max_countries": 2, "max_agents": 2,
                                              "ttl_days": 60}})
    user = User(policy)
    latest = T0
    for session, ip, asn, country, ua, minute in sorted(requests, key=lambda r: r[-1]):
        at = T0 + minute * MINUTE
        latest = max(latest, at)
        user(event(1, session=f"s{session}", at=at, ip=ip, asn=asn, country=country, ua=ua,
                   event_id=f"e{minute}-{session}-{ip}"))
    p = user.profile
    assert len(p.networks) <= 4 and len(p.prefixes) <= 5 and len(p.countries) <= 2
    assert len(p.browsers) <= 2 and len(p.systems) <= 2
    for entries in (p.networks, p.prefixes, p.countries, p.browsers, p.systems):
        for seen in entries.values():
            assert seen.first <= seen.last <= latest and seen.sessions >= 1
    assert session_tag("s1") == session_tag("s1") != session_tag("s2")
