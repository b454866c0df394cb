#!/usr/bin/env python3
"""Labelled evaluation corpus: benign and hijacked sessions, with the ground truth.

Writes native-format events (JSON Lines, ordered by ``occurred_at``) and a
labels file with one record per session (``session_id``, ``user_id``,
``label`` benign|hijack, ``scenario``, ``phase``; for hijacks
``attack_event_id``, the attacker's first event, and every attacker event id).
``sessionwarden score OUT_DIR --labels FILE`` reads the labels against a replay.

Every user first gets a learning period: ``--history-days`` days of ordinary
sessions on the networks and devices that user habitually uses (phase
``learning``). Then each user has one session of the scenario they were built
for (phase ``evaluation``). Benign scenarios are the everyday changes a
session binding must tolerate; hijacks are a stolen session cookie replayed by
someone else. See docs/evaluation.md for the list and what each one means.

Every address is a host of a range in ``NETS``, whose ASN, geolocation and
anonymizer flags were checked against the bundled test databases (the unit
tests re-check every host against them, in the worker's lookup order). A few
ranges carry an IdP-supplied ``request.asn`` (as Okta's ``asNumber`` does),
always on every event of those sessions: Singapore carriers, whose operator
grouping comes from ``data/netclass`` but whose addresses the test databases
do not know.

Deterministic: one ``random.Random`` per user derived from ``--seed``, no
clock, no set iteration; the same arguments give the same bytes. Streaming:
users' event streams are merged with a heap, so memory is bounded by one
user's sessions, not by the corpus.

    python data/generate_labelled.py --out corpus.jsonl --labels labels.jsonl
    python data/generate_labelled.py --benign-per-scenario 200 --hijack-per-scenario 50 ...
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import ipaddress
import math
import random
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Final

import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generate_events as ge

# --------------------------------------------------------------------------
# Networks: every range checked against the bundled databases (tests re-check)
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Net:
    """A host range and what the bundled databases (or the IdP) say about it.

    ``asn`` is the ASN the worker resolves (GeoLite2-ASN-Test, else pyasn), or
    the IdP-supplied one when ``idp_asn``; ``lat``/``lon`` are the
    GeoIP2-City-Test location (None where the test db has none); ``anonymous``
    the GeoIP2-Anonymous-IP-Test flags.
    """

    name: str
    cidr: str
    asn: int
    kind: str  # isp | mobile | corp | hosting | tor
    country: str | None = None
    lat: float | None = None
    lon: float | None = None
    hosts: int = 64
    idp_asn: bool = False
    anonymous: tuple[str, ...] = ()
    operator: str | None = None


_N: Final[tuple[Net, ...]] = (
    # Residential ISPs (IPv4 /16s where mmdb and pyasn agree; see generate_events.NETWORKS).
    Net("comcast", "73.10.0.0/16", 7922, "isp", hosts=256),
    Net("comcast-b", "50.128.0.0/16", 7922, "isp", hosts=256),
    Net("att", "12.82.0.0/16", 7018, "isp", hosts=256),
    Net("dtag", "31.224.0.0/16", 3320, "isp", hosts=256),
    Net("dtag-b", "79.192.0.0/16", 3320, "isp", hosts=256),
    Net("bt", "81.128.0.0/16", 2856, "isp", hosts=256),
    Net("free", "78.192.0.0/16", 12322, "isp", hosts=256),
    Net("sfr", "77.132.0.0/16", 15557, "isp", hosts=256),
    Net("ntt", "180.0.0.0/16", 4713, "isp", hosts=256),
    Net("verizon", "71.96.0.0/16", 701, "isp", hosts=256),
    Net("kt", "59.0.0.0/16", 4766, "isp", hosts=256),
    Net("chinanet", "49.64.0.0/16", 4134, "isp", hosts=256),
    Net("bouygues", "89.80.0.0/16", 5410, "isp", hosts=256),
    # IPv6 homes (mmdb only); the same ASNs as the v4 ranges of those ISPs.
    Net("free-v6", "2a01:e00::/26", 12322, "isp", hosts=256),
    Net("sfr-v6", "2a02:8400::/25", 15557, "isp", hosts=256),
    Net("bt-v6", "2a00:2380::/25", 2856, "isp", hosts=256),
    Net("verizon-v6", "2600:800::/27", 701, "isp", hosts=256),
    # Mobile carriers (CGNAT: the address hops inside the ASN).
    Net("verizon-wireless", "70.212.0.0/16", 6167, "mobile", hosts=256),
    Net("ee", "31.64.0.0/16", 12576, "mobile", hosts=256),
    Net("softbank", "126.0.0.0/16", 17676, "mobile", hosts=256),
    Net("telstra", "1.128.0.0/16", 1221, "mobile", hosts=256),
    # Verizon Wireless in GeoIP2-ISP-Test (MCC 310 / MNC 004), located at the US
    # centroid with accuracy_radius 1000 km in GeoIP2-City-Test.
    Net("verizon-wireless-isp", "149.101.100.0/28", 6167, "mobile", "US", 37.751, -97.822,
        hosts=12),
    # Singapore carriers: IdP-supplied ASNs (data/netclass/mobile_asns.csv) on
    # addresses the City db places in Singapore.
    Net("singnet", "214.0.0.0/25", 3758, "isp", "SG", 1.336, 103.7716, hosts=100, idp_asn=True,
        operator="sg:singtel"),
    Net("singtel-mobile", "214.0.0.128/25", 45143, "mobile", "SG", 1.336, 103.7716, hosts=100,
        idp_asn=True, operator="sg:singtel"),
    Net("m1-fibre", "214.0.0.0/25", 132915, "isp", "SG", 1.336, 103.7716, hosts=100,
        idp_asn=True, operator="sg:m1"),
    Net("m1-mobile", "214.0.0.128/25", 4773, "mobile", "SG", 1.336, 103.7716, hosts=100,
        idp_asn=True, operator="sg:m1"),
    Net("starhub-fibre", "214.0.0.0/25", 55430, "isp", "SG", 1.336, 103.7716, hosts=100,
        idp_asn=True, operator="sg:starhub"),
    Net("starhub-mobile", "214.0.0.128/25", 138345, "mobile", "SG", 1.336, 103.7716,
        hosts=100, idp_asn=True, operator="sg:starhub"),
    # Located networks (GeoIP2-City-Test), for flights, travel and VPN exits.
    Net("san-diego", "214.78.120.0/22", 721, "corp", "US", 32.7405, -117.0935, hosts=64),
    Net("singapore", "214.0.0.0/24", 721, "corp", "SG", 1.336, 103.7716, hosts=64),
    Net("melbourne", "214.0.1.0/24", 721, "corp", "AU", -37.8159, 144.9669, hosts=64),
    Net("milton", "216.160.83.56/29", 209, "corp", "US", 47.2513, -122.3149, hosts=6),
    Net("linkoping-corp", "89.160.20.112/28", 29518, "corp", "SE", 58.4167, 15.6167, hosts=8),
    Net("linkoping", "89.160.20.128/25", 29518, "isp", "SE", 58.4167, 15.6167, hosts=100),
    Net("boxford", "2.125.160.216/29", 5607, "isp", "GB", 51.75, -1.25, hosts=6),
    Net("changchun", "175.16.199.0/24", 4837, "isp", "CN", 43.88, 125.3228, hosts=200),
    # Hosting / cloud (data/netclass/hosting_asns.csv lists every one of these ASNs).
    Net("aws", "54.72.0.0/16", 16509, "hosting", hosts=256),
    Net("aws-ec2", "50.16.0.0/16", 14618, "hosting", hosts=256),
    Net("ovh", "5.39.0.0/17", 16276, "hosting", hosts=256),
    Net("hetzner", "5.9.0.0/16", 24940, "hosting", hosts=256),
    Net("krypt", "67.43.156.0/24", 35908, "hosting", "BT", 27.5, 90.5, hosts=64),
    # Tor exits (GeoIP2-Anonymous-IP-Test: 65.0.0.0/13 is_tor_exit_node; pyasn: AS6389 on /15).
    Net("tor", "65.0.0.0/15", 6389, "tor", hosts=128, anonymous=("tor_exit_node",)),
)
NETS: Final[dict[str, Net]] = {n.name: n for n in _N}

HOME_ISPS: Final = ("comcast", "comcast-b", "att", "dtag", "dtag-b", "bt", "free", "sfr", "ntt",
                    "verizon")
V6_HOMES: Final = ("free-v6", "sfr-v6", "bt-v6", "verizon-v6")
HOSTING: Final = ("aws", "aws-ec2", "ovh", "hetzner", "krypt")
FOREIGN_ISPS: Final = ("kt", "chinanet", "bouygues", "dtag-b", "free")
# Home Wi-Fi and the phone's carrier, same country, different operators.
WIFI_CELL_PAIRS: Final = (("comcast", "verizon-wireless"), ("att", "verizon-wireless-isp"),
                          ("bt", "ee"), ("ntt", "softbank"), ("verizon", "verizon-wireless"))
# One operator's fixed and mobile ASNs (data/netclass operator groupings).
SAME_OPERATOR_PAIRS: Final = (("singnet", "singtel-mobile"), ("m1-fibre", "m1-mobile"),
                              ("starhub-fibre", "starhub-mobile"))
# Long-haul flights between located networks: (origin, destination).
FLIGHTS: Final = (("san-diego", "singapore"), ("milton", "linkoping"), ("boxford", "changchun"),
                  ("linkoping", "melbourne"), ("changchun", "san-diego"))
# Corporate VPN: a home ISP and the company's egress (one a tenant would allowlist).
VPN_EXITS: Final = ("milton", "linkoping-corp")
# Impossible travel on one ASN (AS721 has San Diego, Singapore and Melbourne ranges).
TRAVEL_PAIRS: Final = (("san-diego", "singapore"), ("san-diego", "melbourne"),
                       ("milton", "changchun"), ("boxford", "melbourne"))

CRUISE_KMH: Final = 850.0
GROUND_H: Final = 3.0  # to, through and from the airports

# --------------------------------------------------------------------------
# User agents
# --------------------------------------------------------------------------

_UA = {(u.family, u.os, u.version): u.ua for u in ge.USER_AGENTS}
DESKTOP_UAS: Final = tuple(u for u in ge.USER_AGENTS if not u.mobile)
UPDATES: Final = tuple(  # (older, newer) of one browser on one OS
    (a.ua, b.ua) for a in DESKTOP_UAS for b in DESKTOP_UAS
    if (a.family, a.os) == (b.family, b.os) and b.version > a.version
    and b.version[0] == a.version[0] + 1)
IOS_OLD: Final = _UA[("Mobile Safari", "iOS", (17, 6, 1))]
IOS_NEW: Final = _UA[("Mobile Safari", "iOS", (18, 1))]
SAMSUNG_14: Final = _UA[("Samsung Internet", "Android", (27, 0))]
SAMSUNG_15: Final = SAMSUNG_14.replace("Android 14;", "Android 15;")
PHONE_UAS: Final = (IOS_NEW, SAMSUNG_14, _UA[("Chrome Mobile", "Android", (131, 0, 0))])
AUTOMATION_UAS: Final = (
    "curl/8.5.0",
    "python-requests/2.32.3",
    "Go-http-client/1.1",
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "HeadlessChrome/131.0.0.0 Safari/537.36",
    "okhttp/4.12.0",
    "Wget/1.21.4",
)
UA_OS: Final = {u.ua: u.os for u in ge.USER_AGENTS}
OTHER_DEVICE: Final = {  # victim (family, os) -> an attacker device of another OS
    "Windows": _UA[("Safari", "Mac OS X", (18, 1))],
    "Mac OS X": _UA[("Chrome", "Windows", (131, 0, 0))],
    "Linux": _UA[("Edge", "Windows", (131, 0, 2903))],
    "Ubuntu": _UA[("Chrome Mobile", "Android", (131, 0, 0))],
}

BENIGN: Final[tuple[str, ...]] = (
    "same_network", "browser_update", "os_update", "isp_ip_change", "cgnat_ip_change",
    "ipv6_privacy_rotation", "wifi_cellular_other_operator", "wifi_cellular_same_operator",
    "long_haul_flight", "vpn_starts_off", "vpn_starts_on",
)
HIJACK: Final[tuple[str, ...]] = (
    "cloud_same_ua", "other_isp_other_browser", "same_asn_other_device", "tor",
    "impossible_travel", "automation_client",
)
SCENARIOS: Final = BENIGN + HIJACK

_MIN: Final = 60_000
_H: Final = 60 * _MIN
_D: Final = 24 * _H
_M64: Final = (1 << 64) - 1

# --------------------------------------------------------------------------
# Hosts and distances
# --------------------------------------------------------------------------


def net_hosts(net: Net) -> list[str]:
    """Every address the generator may draw from ``net`` (tests check each one)."""
    return [host(net, k) for k in range(net.hosts)]


def host(net: Net, k: int) -> str:
    """The k-th host of a range, spread over it as ``generate_events`` spreads them."""
    spec = ge.NetSpec(net.cidr, net.asn, net.kind, 1.0, net.hosts, "mmdb")
    return ge._host(spec, k % net.hosts)


def rotate_v6(addr: str, k: int) -> str:
    """Another temporary address (RFC 8981) in the same /64 as ``addr``."""
    base = int(ipaddress.IPv6Address(addr)) >> 64 << 64
    return str(ipaddress.IPv6Address(base | (ge._mix64(k * 7919 + 1) | 1)))


def distance_km(a: Net, b: Net) -> float:
    """Great-circle distance between two located networks (haversine)."""
    assert a.lat is not None and a.lon is not None and b.lat is not None and b.lon is not None
    p1, p2 = math.radians(a.lat), math.radians(b.lat)
    dp, dl = p2 - p1, math.radians(b.lon - a.lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * 6371.0 * math.asin(math.sqrt(h))


# --------------------------------------------------------------------------
# Events
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Config:
    """Everything that determines the output bytes."""

    benign_per_scenario: int = 20
    hijack_per_scenario: int = 10
    history_days: int = 14
    seed: int = 9
    start: str = "2026-11-01T00:00:00Z"
    tenant: str = "acme"


@dataclass(slots=True)
class Step:
    """One request of a session: when, from where, with what, and by whom."""

    t: int
    ip: str
    ua: str
    asn: int | None = None  # IdP-supplied ASN, when the network has one
    attacker: bool = False


@dataclass(slots=True)
class _User:
    index: int
    scenario: str
    rng: random.Random
    user_id: str
    client_id: str
    home: Net
    home_ip: str
    desktop_ua: str
    phone_ua: str
    cell: Net | None = None
    cell_ip: str = ""
    vpn: Net | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def _fmt(ms: int) -> str:
    dt = datetime.fromtimestamp(ms / 1000, tz=UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


class Corpus:
    """One generation run over ``Config``; see the module docstring."""

    def __init__(self, cfg: Config) -> None:
        if cfg.benign_per_scenario < 0 or cfg.hijack_per_scenario < 0 or cfg.history_days < 1:
            raise ValueError("per-scenario counts must be >= 0 and history_days >= 1")
        self.cfg = cfg
        self.start_ms = ge.parse_time_ms(cfg.start)
        self.plan: list[str] = []
        for i in range(max(cfg.benign_per_scenario, cfg.hijack_per_scenario)):
            self.plan += [s for s in BENIGN if i < cfg.benign_per_scenario]
            self.plan += [s for s in HIJACK if i < cfg.hijack_per_scenario]
        self.labels: list[dict[str, Any]] = []
        self.events = 0

    # ---- users ----------------------------------------------------------------

    def _user(self, index: int, scenario: str) -> _User:
        rng = random.Random(ge._mix64((self.cfg.seed << 20) + index))
        uid = f"auth0|lab{rng.getrandbits(64):016x}"
        client = ("Xq7v2NcA9kLmR4tYb8WzE1pHs6UdJ3fG", "aB3kZ9mQ2xR7tL5vN8cP4wY6sD1fH0jU")[
            rng.randrange(2)]
        home = NETS[HOME_ISPS[rng.randrange(len(HOME_ISPS))]]
        desktop = DESKTOP_UAS[rng.randrange(len(DESKTOP_UAS))].ua
        phone = PHONE_UAS[rng.randrange(len(PHONE_UAS))]
        u = _User(index, scenario, rng, uid, client, home, "", desktop, phone)
        pick = rng.randrange
        if scenario == "browser_update":
            u.desktop_ua, u.extra["ua_after"] = UPDATES[pick(len(UPDATES))]
        elif scenario == "os_update":
            u.phone_ua, u.extra["ua_after"] = ((IOS_OLD, IOS_NEW) if pick(2) == 0
                                               else (SAMSUNG_14, SAMSUNG_15))
        elif scenario == "cgnat_ip_change":
            u.cell = NETS[("verizon-wireless", "ee", "softbank", "telstra")[pick(4)]]
        elif scenario == "ipv6_privacy_rotation":
            u.home = NETS[V6_HOMES[pick(len(V6_HOMES))]]
        elif scenario == "wifi_cellular_other_operator":
            wifi, cell = WIFI_CELL_PAIRS[pick(len(WIFI_CELL_PAIRS))]
            u.home, u.cell = NETS[wifi], NETS[cell]
        elif scenario == "wifi_cellular_same_operator":
            wifi, cell = SAME_OPERATOR_PAIRS[pick(len(SAME_OPERATOR_PAIRS))]
            u.home, u.cell = NETS[wifi], NETS[cell]
        elif scenario == "long_haul_flight":
            origin, dest = FLIGHTS[pick(len(FLIGHTS))]
            u.home, u.extra["dest"] = NETS[origin], NETS[dest]
        elif scenario in ("vpn_starts_off", "vpn_starts_on"):
            u.vpn = NETS[VPN_EXITS[pick(len(VPN_EXITS))]]
        elif scenario == "impossible_travel":
            origin, dest = TRAVEL_PAIRS[pick(len(TRAVEL_PAIRS))]
            u.home, u.extra["dest"] = NETS[origin], NETS[dest]
        u.home_ip = host(u.home, pick(u.home.hosts))
        if u.cell is None and pick(3) == 0:  # a third of users also use their phone
            u.cell = NETS[("verizon-wireless", "ee", "softbank", "telstra")[pick(4)]]
        if u.cell is not None:
            u.cell_ip = host(u.cell, pick(u.cell.hosts))
        return u

    # ---- sessions -------------------------------------------------------------

    @staticmethod
    def _times(rng: random.Random, t0: int, n: int) -> list[int]:
        """Request times of a session: bursts of minutes, occasional longer pauses."""
        out, t = [t0], t0
        for _ in range(n - 1):
            t += int((rng.expovariate(1 / 6) if rng.random() < 0.8
                      else rng.uniform(30, 90)) * _MIN) + 1000
            out.append(t)
        return out

    def _step(self, net: Net, ip: str, ua: str, t: int, attacker: bool = False) -> Step:
        return Step(t, ip, ua, net.asn if net.idp_asn else None, attacker)

    def _history(self, u: _User, day: int) -> list[Step]:
        """One ordinary session on one of the user's habitual networks and devices."""
        rng = u.rng
        t0 = self.start_ms + day * _D + int(rng.uniform(6, 20) * _H)
        times = self._times(rng, t0, 3 + rng.randrange(6))
        habits: list[tuple[Net, str, str]] = [(u.home, u.home_ip, u.desktop_ua)]
        if u.cell is not None:
            habits += [(u.cell, u.cell_ip, u.phone_ua), (u.home, u.home_ip, u.phone_ua)]
        if u.vpn is not None:
            habits.append((u.vpn, host(u.vpn, u.index), u.desktop_ua))
        net, ip, ua = habits[rng.randrange(len(habits))]
        steps = []
        for i, t in enumerate(times):
            if net.kind == "mobile" and i and rng.random() < 0.3:  # CGNAT hop
                ip = host(net, rng.randrange(net.hosts))
            if net in V6_NETS and i and rng.random() < 0.3:
                ip = rotate_v6(ip, rng.randrange(1 << 30))
            steps.append(self._step(net, ip, ua, t))
        if (u.cell is not None and net is u.cell and len(steps) > 2
                and rng.random() < 0.5):  # the phone was back on home Wi-Fi
            for s in steps[len(steps) // 2:]:
                s.ip, s.asn = u.home_ip, (u.home.asn if u.home.idp_asn else None)
        return steps

    def _evaluation(self, u: _User, t0: int) -> tuple[list[Step], dict[str, Any]]:
        """The session of the user's scenario, and the label facts it adds."""
        rng, sc = u.rng, u.scenario
        pick = rng.randrange
        extra: dict[str, Any] = {}
        home = (u.home, u.home_ip)

        def walk(n: int, legs: Sequence[tuple[Net, str, str]]) -> list[Step]:
            times = self._times(rng, t0, n)
            per = max(1, n // len(legs))
            return [self._step(*legs[min(i // per, len(legs) - 1)][:2],
                               legs[min(i // per, len(legs) - 1)][2], t)
                    for i, t in enumerate(times)]

        if sc == "same_network":
            return walk(8 + pick(8), [(*home, u.desktop_ua)]), extra
        if sc == "browser_update":
            return walk(6 + pick(6), [(*home, u.desktop_ua), (*home, u.extra["ua_after"])]), {
                "ua_after": u.extra["ua_after"]}
        if sc == "os_update":
            return walk(6 + pick(6), [(*home, u.phone_ua), (*home, u.extra["ua_after"])]), {
                "ua_after": u.extra["ua_after"]}
        if sc == "isp_ip_change":  # DHCP lease renewed with another address of the ISP
            others = [ip for ip in (host(u.home, (u.index * 37 + k * 101) % u.home.hosts)
                                    for k in range(1, 6)) if ip != u.home_ip]
            legs = [(u.home, ip, u.desktop_ua) for ip in others[:2]]
            return walk(6 + pick(6), [(*home, u.desktop_ua), *legs]), extra
        if sc == "cgnat_ip_change":
            assert u.cell is not None
            legs = [(u.cell, host(u.cell, pick(u.cell.hosts)), u.phone_ua) for _ in range(4)]
            return walk(8 + pick(6), legs), extra
        if sc == "ipv6_privacy_rotation":
            ips = [u.home_ip] + [rotate_v6(u.home_ip, u.index * 16 + k) for k in range(1, 4)]
            return walk(8 + pick(6), [(u.home, ip, u.desktop_ua) for ip in ips]), extra
        if sc in ("wifi_cellular_other_operator", "wifi_cellular_same_operator"):
            assert u.cell is not None
            legs = [(*home, u.phone_ua), (u.cell, u.cell_ip, u.phone_ua), (*home, u.phone_ua),
                    (u.cell, host(u.cell, pick(u.cell.hosts)), u.phone_ua)]
            extra.update(wifi_asn=u.home.asn, cell_asn=u.cell.asn)
            return walk(8 + pick(6), legs), extra
        if sc == "long_haul_flight":
            dest: Net = u.extra["dest"]
            before = walk(3 + pick(3), [(*home, u.desktop_ua)])
            km = distance_km(u.home, dest)
            hours = km / CRUISE_KMH + GROUND_H
            t1 = before[-1].t + int(hours * _H)
            after = [self._step(dest, host(dest, pick(dest.hosts)), u.desktop_ua, t)
                     for t in self._times(rng, t1, 3 + pick(4))]
            extra.update(origin=u.home.name, destination=dest.name, distance_km=round(km),
                         speed_kmh=round(km / ((t1 - before[-1].t) / _H), 1))
            return before + after, extra
        if sc in ("vpn_starts_off", "vpn_starts_on"):
            assert u.vpn is not None
            vpn = (u.vpn, host(u.vpn, u.index), u.desktop_ua)
            legs = [(*home, u.desktop_ua), vpn, (*home, u.desktop_ua)]
            if sc == "vpn_starts_on":
                legs = [vpn, (*home, u.desktop_ua), vpn]
            extra["vpn_exit_cidr"] = u.vpn.cidr
            return walk(9 + pick(6), legs), extra
        return self._hijack(u, t0)

    def _hijack(self, u: _User, t0: int) -> tuple[list[Step], dict[str, Any]]:
        """The victim's session, then the attacker's requests with the stolen cookie."""
        rng, sc = u.rng, u.scenario
        pick = rng.randrange
        victim = [self._step(u.home, u.home_ip, u.desktop_ua, t)
                  for t in self._times(rng, t0, 2 + pick(4))]
        gap = int(rng.uniform(2, 40) * _MIN) if sc == "impossible_travel" \
            else int(rng.uniform(5, 240) * _MIN)
        ta = victim[-1].t + gap
        ua = u.desktop_ua
        extra: dict[str, Any] = {}
        if sc == "cloud_same_ua":
            net = NETS[HOSTING[pick(len(HOSTING))]]
            ip = host(net, pick(net.hosts))
        elif sc == "other_isp_other_browser":
            options = [n for n in FOREIGN_ISPS if NETS[n].asn != u.home.asn]
            net = NETS[options[pick(len(options))]]
            ip = host(net, pick(net.hosts))
            ua = (_UA[("Firefox", "Windows", (133, 0))] if "Firefox" not in u.desktop_ua
                  else _UA[("Chrome", "Windows", (131, 0, 0))])
        elif sc == "same_asn_other_device":
            net = u.home
            ip = host(net, (u.index * 53 + 17) % net.hosts)
            if ip == u.home_ip:
                ip = host(net, (u.index * 53 + 18) % net.hosts)
            ua = OTHER_DEVICE[UA_OS[ua]]
        elif sc == "tor":
            net = NETS["tor"]
            ip = host(net, pick(net.hosts))
        elif sc == "impossible_travel":
            net = u.extra["dest"]
            ip = host(net, pick(net.hosts))
            km = distance_km(u.home, net)
            extra.update(origin=u.home.name, destination=net.name, distance_km=round(km),
                         speed_kmh=round(km / (gap / _H)))
        else:  # automation_client: a script replays the cookie
            ua = AUTOMATION_UAS[pick(len(AUTOMATION_UAS))]
            if pick(2) == 0:  # from a residential proxy in the victim's own ISP
                net, ip = u.home, host(u.home, (u.index * 29 + 5) % u.home.hosts)
                extra["variant"] = "same_asn_proxy"
            else:  # from the victim's own machine (infostealer)
                net, ip = u.home, u.home_ip
                extra["variant"] = "same_ip"
        attacker = [self._step(net, ip, ua, t, attacker=True)
                    for t in self._times(rng, ta, 2 + pick(4))]
        # The victim keeps using the session now and then, interleaved.
        later = [self._step(u.home, u.home_ip, u.desktop_ua, t)
                 for t in self._times(rng, ta + int(rng.uniform(3, 30) * _MIN), 1 + pick(3))]
        extra.update(attacker_network=net.name, attacker_asn=net.asn, attacker_ip=ip,
                     attacker_user_agent=ua)
        return sorted(victim + attacker + later, key=lambda s: (s.t, s.attacker)), extra

    # ---- output ---------------------------------------------------------------

    def _user_stream(self, index: int) -> Iterator[tuple[int, int, bytes]]:
        """One user's event lines in time order: history, then the evaluation session."""
        scenario = self.plan[index]
        u = self._user(index, scenario)
        days = [d for d in range(self.cfg.history_days) if u.rng.random() < 0.7]
        sessions: list[tuple[str, list[Step], dict[str, Any]]] = [
            ("learning", self._history(u, d), {}) for d in days or [0]]
        t0 = self.start_ms + (self.cfg.history_days + index % 3) * _D \
            + int(u.rng.uniform(7, 15) * _H)
        steps, extra = self._evaluation(u, t0)
        sessions.append(("evaluation", steps, extra))
        seq = 0
        for k, (phase, session_steps, facts) in enumerate(sessions):
            sid = f"lab-{self.cfg.seed}-{index:05d}-{k:03d}"
            created = _fmt(session_steps[0].t)
            head = {"id": sid, "created_at": created, "authenticated_at": created}
            ids: list[str] = []
            attack_ids: list[str] = []
            for i, s in enumerate(session_steps):
                eid = f"lab-{self.cfg.seed}-{index:05d}-{k:03d}-{i:03d}"
                ids.append(eid)
                if s.attacker:
                    attack_ids.append(eid)
                req: dict[str, Any] = {"ip": s.ip, "user_agent": s.ua}
                if s.asn is not None:
                    req["asn"] = f"AS{s.asn}"
                ev = {"event_id": eid,
                      "type": "login" if i == 0 else ("token_refresh" if i % 3 == 2
                                                      else "interaction"),
                      "occurred_at": _fmt(s.t), "tenant": self.cfg.tenant, "session": head,
                      "user": {"id": u.user_id}, "client_id": u.client_id, "request": req}
                seq += 1
                yield s.t, seq, orjson.dumps(ev, option=orjson.OPT_APPEND_NEWLINE)
            hijack = bool(attack_ids)
            label = {"session_id": sid, "user_id": u.user_id, "tenant": self.cfg.tenant,
                     "label": "hijack" if hijack else "benign",
                     "scenario": scenario if phase == "evaluation" else "history",
                     "phase": phase, "events": len(ids), "first_event_id": ids[0],
                     "last_event_id": ids[-1],
                     "attack_event_id": attack_ids[0] if hijack else None,
                     "attack_at": _fmt(next(s.t for s in session_steps if s.attacker))
                     if hijack else None,
                     "attacker_event_ids": attack_ids,
                     "ips": sorted({s.ip for s in session_steps}),
                     "stays_in_known_countries": not (phase == "evaluation"
                                                      and scenario == "long_haul_flight"),
                     **({"facts": facts} if facts else {})}
            self.labels.append(label)

    def _keyed(self, index: int) -> Iterator[tuple[tuple[int, int, int], bytes]]:
        """A user's lines keyed for the merge: time, then user, then order."""
        for t, seq, line in self._user_stream(index):
            yield (t, index, seq), line

    def run(self, out: IO[bytes], labels: IO[bytes] | None) -> dict[str, Any]:
        """Write the merged event stream (and labels); returns a summary."""
        merged = heapq.merge(*(self._keyed(i) for i in range(len(self.plan))))
        buf: list[bytes] = []
        for _, line in merged:
            buf.append(line)
            self.events += 1
            if len(buf) >= 4096:
                out.write(b"".join(buf))
                buf.clear()
        out.write(b"".join(buf))
        self.labels.sort(key=lambda r: r["session_id"])
        if labels is not None:
            labels.write(b"".join(orjson.dumps(r, option=orjson.OPT_APPEND_NEWLINE)
                                  for r in self.labels))
        per: dict[str, int] = {}
        for r in self.labels:
            per[r["scenario"]] = per.get(r["scenario"], 0) + 1
        return {"events": self.events, "sessions": len(self.labels), "users": len(self.plan),
                "per_scenario": per}


V6_NETS: Final = frozenset(NETS[n] for n in V6_HOMES)


def generate(cfg: Config, out: IO[bytes], labels: IO[bytes] | None = None) -> dict[str, Any]:
    """Write the corpus to ``out`` and its labels to ``labels``."""
    return Corpus(cfg).run(out, labels)


def main(argv: Sequence[str] | None = None) -> int:
    d = Config()
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", required=True, help="events file (native JSON Lines), or -")
    p.add_argument("--labels", required=True, help="labels file (JSON Lines)")
    p.add_argument("--benign-per-scenario", type=int, default=d.benign_per_scenario)
    p.add_argument("--hijack-per-scenario", type=int, default=d.hijack_per_scenario)
    p.add_argument("--history-days", type=int, default=d.history_days,
                   help="learning period before the evaluated sessions")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--start", default=d.start, help="first history day, e.g. 2026-11-01T00:00:00Z")
    p.add_argument("--stats", action="store_true", help="print a JSON summary to stderr")
    args = p.parse_args(argv)
    cfg = Config(args.benign_per_scenario, args.hijack_per_scenario, args.history_days,
                 args.seed, args.start)
    with contextlib.ExitStack() as stack:
        out = sys.stdout.buffer if args.out == "-" else stack.enter_context(open(args.out, "wb"))
        lab = stack.enter_context(open(args.labels, "wb"))
        summary = generate(cfg, out, lab)
    if args.stats:
        sys.stderr.write(orjson.dumps(summary, option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
