#!/usr/bin/env python3
"""Seeded, streaming generator of realistic native-format IdP session events.

Feeds the bundled demo log (``--profile demo``) and benchmark inputs
(``--profile bench``, sizes overridable). One JSON object per line, ordered by
``occurred_at``; the only exception is re-delivered duplicates, which repeat an
earlier line byte for byte (so their timestamp is a few seconds in the past).

Deterministic: all randomness comes from one ``random.Random(seed)``; no wall
clock and no set/hash iteration, so the same arguments give the same bytes.

Streaming: memory is bounded by the sessions alive at the same time (a heap of
per-session next-event times) plus the user table, never by the event count.

Every IP on a well-formed line is a host from ``NETWORKS``. Each range was
checked against the bundled test databases (GeoLite2-ASN-Test.mmdb, else the
pyasn 2014 table, the order ``worker.enrich`` uses) and the unit tests re-check
every host, so "same ASN" and "ASN change" scenarios mean what they say.

    python data/generate_events.py --profile demo --out data/demo/events.jsonl
    python data/generate_events.py --events 1000000 --sessions 100000 --seed 1 --out big.jsonl
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import io
import ipaddress
import math
import os
import random
import sys
from bisect import bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import cache
from itertools import accumulate
from typing import IO, Any, Final

import orjson

# --------------------------------------------------------------------------
# Static tables
# --------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NetSpec:
    """A host range whose ASN is known from the bundled test databases.

    ``cidr`` is the range hosts are drawn from (inside the database network);
    ``hosts`` is how many distinct addresses are used in it: few for corporate
    egress NATs (many users share an IP), many for residential/mobile ISPs.
    """

    cidr: str
    asn: int | None  # None only for RFC 1918 corporate-internal ranges
    kind: str  # corp | isp | mobile | hosting | private
    weight: float  # popularity as a home network
    hosts: int
    source: str  # which database answers first: "mmdb" | "pyasn" | "private"
    note: str = ""


# Big ISP networks are narrowed to a /16 where the pyasn 2014 table agrees with
# the mmdb on every host used (elsewhere they disagree, e.g. 23.32.0.0/11 is
# AS35994 in the mmdb but AS812 in pyasn), so scenarios hold for either source.
NETWORKS: Final[tuple[NetSpec, ...]] = (
    # Corporate egress: few IPs, many users. City-Test geo where it exists.
    # 81.2.69.0/24 is VPN/proxy/Tor in GeoIP2-Anonymous-IP-Test, so the worker
    # raises anonymous_network for it: kept rare, like a corporate VPN exit.
    NetSpec("81.2.69.160/27", 20712, "corp", 1, 8, "pyasn", "London GB (City), Anonymous-IP"),
    NetSpec("81.2.69.192/28", 20712, "corp", 0.5, 6, "pyasn", "London GB (City), Anonymous-IP"),
    NetSpec("81.2.69.144/28", 20712, "corp", 0.3, 4, "pyasn", "London GB (City), Anonymous-IP"),
    NetSpec("216.160.83.56/29", 209, "corp", 8, 6, "mmdb", "Milton US (City)"),
    NetSpec("89.160.20.112/28", 29518, "corp", 7, 8, "mmdb", "Linköping SE (City)"),
    NetSpec("214.78.120.0/22", 721, "corp", 6, 16, "mmdb", "San Diego US (City)"),
    NetSpec("214.0.0.0/24", 721, "corp", 1, 8, "mmdb", "Singapore SG (City)"),
    NetSpec("214.0.1.0/24", 721, "corp", 1, 8, "mmdb", "Melbourne AU (City)"),
    NetSpec("15.1.0.0/16", 71, "corp", 3, 4, "mmdb", "Hewlett-Packard"),
    NetSpec("53.10.0.0/16", 31399, "corp", 2, 4, "mmdb", "Daimler"),
    NetSpec("18.7.0.0/16", 3, "corp", 2, 8, "mmdb", "MIT"),
    NetSpec("57.20.0.0/16", 2647, "corp", 1, 4, "mmdb", "SITA"),
    # Residential ISPs.
    NetSpec("89.160.20.128/25", 29518, "isp", 4, 120, "mmdb", "Linköping SE (City)"),
    NetSpec("2.125.160.216/29", 5607, "isp", 1, 6, "pyasn", "Boxford GB (City)"),
    NetSpec("2.2.3.0/24", 3215, "isp", 2, 200, "pyasn", "Boxford GB (City)"),
    NetSpec("175.16.199.0/24", 4837, "isp", 2, 200, "pyasn", "Changchun CN (City)"),
    NetSpec("202.196.224.0/20", 4538, "isp", 1, 256, "pyasn", "PH (City)"),
    NetSpec("12.82.0.0/16", 7018, "isp", 6, 256, "mmdb", "AT&T"),
    NetSpec("12.86.0.0/16", 7018, "isp", 4, 256, "mmdb", "AT&T"),
    NetSpec("31.224.0.0/16", 3320, "isp", 5, 256, "mmdb", "Deutsche Telekom"),
    NetSpec("79.192.0.0/16", 3320, "isp", 4, 256, "mmdb", "Deutsche Telekom"),
    NetSpec("50.128.0.0/16", 7922, "isp", 8, 256, "mmdb", "Comcast"),
    NetSpec("73.10.0.0/16", 7922, "isp", 8, 256, "mmdb", "Comcast"),
    NetSpec("71.96.0.0/16", 701, "isp", 3, 256, "mmdb", "Verizon"),
    NetSpec("77.132.0.0/16", 15557, "isp", 3, 256, "mmdb", "SFR"),
    NetSpec("78.192.0.0/16", 12322, "isp", 4, 256, "mmdb", "Free"),
    NetSpec("81.128.0.0/16", 2856, "isp", 5, 256, "mmdb", "BT"),
    NetSpec("89.80.0.0/16", 5410, "isp", 2, 256, "mmdb", "Bouygues"),
    NetSpec("59.0.0.0/16", 4766, "isp", 2, 256, "mmdb", "Korea Telecom"),
    NetSpec("180.0.0.0/16", 4713, "isp", 2, 256, "mmdb", "NTT"),
    NetSpec("49.64.0.0/16", 4134, "isp", 1, 256, "mmdb", "Chinanet"),
    # Mobile carriers (CGNAT: the IP hops inside the ASN).
    NetSpec("1.128.0.0/16", 1221, "mobile", 4, 256, "mmdb", "Telstra"),
    NetSpec("31.64.0.0/16", 12576, "mobile", 4, 256, "mmdb", "EE"),
    NetSpec("60.64.0.0/16", 17676, "mobile", 2, 256, "mmdb", "Softbank"),
    NetSpec("126.0.0.0/16", 17676, "mobile", 2, 256, "mmdb", "Softbank"),
    NetSpec("39.192.0.0/16", 23693, "mobile", 1, 256, "mmdb", "Telkomsel"),
    NetSpec("70.212.0.0/16", 6167, "mobile", 3, 256, "mmdb", "Verizon Wireless"),
    NetSpec("97.138.0.0/16", 6167, "mobile", 2, 256, "mmdb", "Verizon Wireless"),
    # Hosting / unusual origins: rare as a home, common as a hijacker's origin.
    NetSpec("38.0.0.0/16", 174, "hosting", 0.5, 128, "mmdb", "Cogent"),
    NetSpec("67.43.156.0/24", 35908, "hosting", 0.5, 64, "mmdb", "Bhutan (City)"),
    # IPv6: only the mmdb resolves these (the pyasn 2014 table is IPv4-only).
    # Same ASNs as v4 ranges above, so v4<->v6 switches are same-ASN changes.
    NetSpec("2001:8000::/20", 1221, "mobile", 2, 256, "mmdb", "Telstra v6"),
    NetSpec("2600:800::/27", 701, "isp", 1, 256, "mmdb", "Verizon v6"),
    NetSpec("2a02:8400::/25", 15557, "isp", 1, 256, "mmdb", "SFR v6"),
    NetSpec("2a01:e00::/26", 12322, "isp", 2, 256, "mmdb", "Free v6"),
    NetSpec("2a00:2380::/25", 2856, "isp", 1, 256, "mmdb", "BT v6"),
    NetSpec("2600:6000::/20", 237, "isp", 0.5, 64, "mmdb", "Merit v6"),
    # Corporate-internal traffic (RFC 1918: resolves nowhere, by design).
    NetSpec("10.20.0.0/16", None, "private", 6, 512, "private", "corp LAN"),
    NetSpec("192.168.10.0/24", None, "private", 2, 200, "private", "corp LAN"),
)


@dataclass(frozen=True, slots=True)
class UASpec:
    """A real User-Agent header with the family/os/version ua-parser reports."""

    family: str
    os: str
    version: tuple[int, ...]
    mobile: bool
    weight: float  # popularity
    ua: str


_WEBKIT = "AppleWebKit/537.36 (KHTML, like Gecko)"
_IOS_WEBKIT = "AppleWebKit/605.1.15 (KHTML, like Gecko)"
_WIN = "Mozilla/5.0 (Windows NT 10.0; Win64; x64)"
_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)"


def _chrome(platform: str, v: int, mobile: str = "") -> str:
    return f"{platform} {_WEBKIT} Chrome/{v}.0.0.0 {mobile}Safari/537.36"


def _edge(platform: str, v: str) -> str:
    return f"{_chrome(platform, int(v.split('.', 1)[0]))} Edg/{v}"


def _firefox(platform: str, v: int) -> str:
    return f"Mozilla/5.0 ({platform}; rv:{v}.0) Gecko/20100101 Firefox/{v}.0"


def _ios(os_v: str, browser: str) -> str:
    return (f"Mozilla/5.0 (iPhone; CPU iPhone OS {os_v} like Mac OS X) {_IOS_WEBKIT} "
            f"{browser} Mobile/15E148 Safari/604.1")


def _samsung(v: str, chrome: int) -> str:
    return (f"Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) {_WEBKIT} "
            f"SamsungBrowser/{v} Chrome/{chrome}.0.0.0 Mobile Safari/537.36")


_LINUX = "Mozilla/5.0 (X11; Linux x86_64)"
_ANDROID = "Mozilla/5.0 (Linux; Android 10; K)"
_FF_ANDROID = "Mozilla/5.0 (Android 14; Mobile; rv:133.0) Gecko/133.0 Firefox/133.0"
_SAFARI_MAC = f"{_MAC} {_IOS_WEBKIT} Version/{{v}} Safari/605.1.15"
_FF_WIN = "Windows NT 10.0; Win64; x64"
_FF_MAC = "Macintosh; Intel Mac OS X 10.15"
_FF_LINUX = "X11; Ubuntu; Linux x86_64"

# Several versions per family/OS, so browser updates and downgrades exist.
USER_AGENTS: Final[tuple[UASpec, ...]] = (
    UASpec("Chrome", "Windows", (131, 0, 0), False, 20, _chrome(_WIN, 131)),
    UASpec("Chrome", "Windows", (130, 0, 0), False, 8, _chrome(_WIN, 130)),
    UASpec("Chrome", "Windows", (129, 0, 0), False, 3, _chrome(_WIN, 129)),
    UASpec("Chrome", "Mac OS X", (131, 0, 0), False, 7, _chrome(_MAC, 131)),
    UASpec("Chrome", "Mac OS X", (130, 0, 0), False, 2, _chrome(_MAC, 130)),
    UASpec("Chrome", "Linux", (131, 0, 0), False, 2, _chrome(_LINUX, 131)),
    UASpec("Chrome", "Linux", (130, 0, 0), False, 0.7, _chrome(_LINUX, 130)),
    UASpec("Chrome Mobile", "Android", (131, 0, 0), True, 8, _chrome(_ANDROID, 131, "Mobile ")),
    UASpec("Chrome Mobile", "Android", (130, 0, 0), True, 3, _chrome(_ANDROID, 130, "Mobile ")),
    UASpec("Chrome Mobile", "Android", (129, 0, 0), True, 1, _chrome(_ANDROID, 129, "Mobile ")),
    UASpec("Edge", "Windows", (131, 0, 2903), False, 6, _edge(_WIN, "131.0.2903.70")),
    UASpec("Edge", "Windows", (130, 0, 2849), False, 2, _edge(_WIN, "130.0.2849.80")),
    UASpec("Edge", "Windows", (129, 0, 2792), False, 0.7, _edge(_WIN, "129.0.2792.79")),
    UASpec("Edge", "Mac OS X", (131, 0, 2903), False, 0.6, _edge(_MAC, "131.0.2903.70")),
    UASpec("Firefox", "Windows", (133, 0), False, 3, _firefox(_FF_WIN, 133)),
    UASpec("Firefox", "Windows", (132, 0), False, 1.2, _firefox(_FF_WIN, 132)),
    UASpec("Firefox", "Windows", (131, 0), False, 0.4, _firefox(_FF_WIN, 131)),
    UASpec("Firefox", "Mac OS X", (133, 0), False, 1, _firefox(_FF_MAC, 133)),
    UASpec("Firefox", "Mac OS X", (132, 0), False, 0.4, _firefox(_FF_MAC, 132)),
    UASpec("Firefox", "Ubuntu", (133, 0), False, 0.8, _firefox(_FF_LINUX, 133)),
    UASpec("Firefox", "Ubuntu", (132, 0), False, 0.3, _firefox(_FF_LINUX, 132)),
    UASpec("Firefox Mobile", "Android", (133, 0), True, 0.4, _FF_ANDROID),
    UASpec("Safari", "Mac OS X", (18, 1), False, 5, _SAFARI_MAC.format(v="18.1")),
    UASpec("Safari", "Mac OS X", (18, 0), False, 1.5, _SAFARI_MAC.format(v="18.0")),
    UASpec("Safari", "Mac OS X", (17, 6), False, 0.8, _SAFARI_MAC.format(v="17.6")),
    UASpec("Mobile Safari", "iOS", (18, 1), True, 8, _ios("18_1", "Version/18.1")),
    UASpec("Mobile Safari", "iOS", (18, 0, 1), True, 2.5, _ios("18_0_1", "Version/18.0.1")),
    UASpec("Mobile Safari", "iOS", (17, 6, 1), True, 1.5, _ios("17_6_1", "Version/17.6.1")),
    UASpec("Chrome Mobile iOS", "iOS", (131, 0, 6778), True, 1,
           _ios("18_1", "CriOS/131.0.6778.73")),
    UASpec("Chrome Mobile iOS", "iOS", (130, 0, 6723), True, 0.4,
           _ios("18_0_1", "CriOS/130.0.6723.90")),
    UASpec("Samsung Internet", "Android", (27, 0), True, 1, _samsung("27.0", 125)),
    UASpec("Samsung Internet", "Android", (26, 0), True, 0.5, _samsung("26.0", 122)),
)


@dataclass(frozen=True, slots=True)
class Connection:
    """An IdP connection; ``session_timeout_ms`` goes to metadata as a string."""

    name: str
    weight: float
    user_prefix: str
    session_timeout_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Organization:
    """An organization; ``idle_timeout_ms`` goes to metadata as a string."""

    id: str
    name: str
    weight: float
    idle_timeout_ms: int | None = None


@dataclass(frozen=True, slots=True)
class Tenant:
    """A tenant with the IdP-side session defaults the generator obeys."""

    name: str
    weight: float
    session_ms: int  # default absolute lifetime
    idle_ms: int  # default idle timeout
    max_session_ms: int  # the IdP clamps longer connection timeouts to this
    clients: tuple[str, ...]
    connections: tuple[Connection, ...]
    organizations: tuple[Organization, ...]
    no_org_weight: float


_MIN: Final = 60_000
_H: Final = 60 * _MIN
_D: Final = 24 * _H

TENANTS: Final[tuple[Tenant, ...]] = (
    Tenant(
        "acme", 0.6, 3 * _D, 12 * _H, 7 * _D,
        ("Xq7v2NcA9kLmR4tYb8WzE1pHs6UdJ3fG", "aB3kZ9mQ2xR7tL5vN8cP4wY6sD1fH0jU",
         "mN4bV8cX2zL6kJ9hG3fD5sA7qW1eR0tY"),
        (
            Connection("Username-Password-Authentication", 4, "auth0|"),
            Connection("acme-okta", 4, "samlp|acme-okta|", 8 * _H),
            Connection("acme-ad", 2, "ad|acme-ad|", 30 * _D),  # > 7 days: clamped
            Connection("google-oauth2", 1, "google-oauth2|"),
        ),
        (
            Organization("org_7Hq2LbX0aR3kPz9D", "engineering", 3, 15 * _MIN),
            Organization("org_Ks81VnD4mQ0tYc2W", "sales", 2, _H),
            Organization("org_Bf5Rr7JwE2uN9xLa", "contractors", 1, 15 * _MIN),
        ),
        3,
    ),
    Tenant(
        "globex", 0.3, 1 * _D, 4 * _H, 7 * _D,
        ("Gl0b3xP0rtaLc1i3ntId0000aaaa1111", "hR5tW2qZ8nM4kB7vC1xL9pF3sG6dJ0yE"),
        (
            Connection("Username-Password-Authentication", 3, "auth0|"),
            Connection("globex-azuread", 3, "waad|", 12 * _H),
            Connection("github", 1, "github|"),
        ),
        (Organization("org_Gx3mP9wT6vB1nQ4s", "globex", 2),),  # org without metadata
        2,
    ),
    Tenant(
        "initech", 0.1, 3 * _D, 3 * _D, 7 * _D,
        ("In1t3chTPSr3p0rtsC1i3nt00bbbb22",),
        (
            Connection("Username-Password-Authentication", 1, "auth0|"),
            Connection("initech-saml", 2, "samlp|initech-saml|", 8 * _H),
        ),
        (Organization("org_Iq4Zt8Rk2Wm6Yp0X", "initech", 1, _H),),
        1,
    ),
)

SCENARIOS: Final[tuple[str, ...]] = (
    "stable",
    "ip_same_asn",  # IP changes, ASN stays (mobile CGNAT, v4<->v6 dual stack)
    "asn_change",  # IP moves to another ASN, same browser
    "asn_device_change",  # cookie replay: another ASN and another device
    "browser_update",  # same family/OS, higher version
    "device_change",  # other browser family or OS, same IP
    "browser_downgrade",  # same family/OS, lower version (rare)
)
IP_SCENARIOS: Final = frozenset({"ip_same_asn", "asn_change", "asn_device_change"})
MALFORMED_KINDS: Final[tuple[str, ...]] = (
    "not_json", "truncated", "missing_field", "bad_time", "invalid_ip", "wrong_type",
    "empty_line",
)
EVENT_TYPES: Final[tuple[str, ...]] = (
    "login", "silent_auth", "token_refresh", "interaction", "logout",
)
REQUIRED_FIELDS: Final[tuple[str, ...]] = (
    "event_id", "type", "occurred_at", "session.id", "request.ip",
)


@dataclass(frozen=True, slots=True)
class Config:
    """Everything that determines the output bytes."""

    events: int  # output lines, malformed and duplicate lines included
    sessions: int  # upper bound on distinct sessions
    seed: int
    malformed_rate: float
    duplicate_rate: float
    span_hours: float  # period over which new sessions arrive
    scenario_weights: tuple[float, ...]  # aligned with SCENARIOS
    start: str = "2026-11-01T00:00:00Z"

    @classmethod
    def from_profile(cls, name: str, **overrides: Any) -> Config:
        """Profile defaults with the explicit (non-None) overrides applied."""
        return replace(PROFILES[name], **{k: v for k, v in overrides.items() if v is not None})


PROFILES: Final[dict[str, Config]] = {
    # Many anomalies, so the small demo log shows every case.
    "demo": Config(3_000, 300, 20261127, 0.006, 0.005, 12.0,
                   (0.55, 0.12, 0.10, 0.05, 0.08, 0.06, 0.04)),
    # ASN changes in ~1.6 % of sessions: a real tenant with a few incidents.
    "bench": Config(1_000_000, 100_000, 1, 0.001, 0.005, 72.0,
                    (0.886, 0.05, 0.012, 0.004, 0.03, 0.015, 0.003)),
}

# --------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------

_M64: Final = (1 << 64) - 1
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def _mix64(x: int) -> int:
    """splitmix64 finalizer: a bijection, so distinct inputs give distinct ids."""
    z = (x + 0x9E3779B97F4A7C15) & _M64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _M64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _M64
    return z ^ (z >> 31)


def parse_time_ms(text: str) -> int:
    """ISO-8601 (``Z`` allowed) to epoch milliseconds, exactly (no floats)."""
    dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


@cache
def _sec_ms_table() -> list[bytes]:
    """``SS.mmmZ`` for each millisecond of a minute; built once per process."""
    return [b"%02d.%03dZ" % divmod(i, 1000) for i in range(_MIN)]


class _TimeFormatter:
    """Epoch ms -> ``YYYY-MM-DDTHH:MM:SS.mmmZ`` as bytes.

    strftime/f-strings per timestamp were the generator's hot spot, so a
    timestamp is a cached minute prefix plus a precomputed ``SS.mmmZ`` tail;
    the hot loop reads ``minutes``/``tail`` directly.
    """

    __slots__ = ("_days", "_hm", "minutes", "tail")

    def __init__(self) -> None:
        self._days: dict[int, bytes] = {}
        self._hm = [f"{h:02d}:{m:02d}:".encode() for h in range(24) for m in range(60)]
        self.minutes: dict[int, bytes] = {}
        self.tail = _sec_ms_table()

    def prefix(self, minute: int) -> bytes:
        """``YYYY-MM-DDTHH:MM:`` for a minute since the epoch (cached)."""
        p = self.minutes.get(minute)
        if p is None:
            day, mod = divmod(minute, 1440)
            d = self._days.get(day)
            if d is None:
                d = datetime.fromtimestamp(day * 86_400, tz=UTC).strftime("%Y-%m-%dT").encode()
                self._days[day] = d
            if len(self.minutes) > 200_000:  # bounded memory on very long spans
                self.minutes.clear()
            p = self.minutes[minute] = d + self._hm[mod]
        return p

    def __call__(self, ms: int) -> bytes:
        minute, rest = divmod(ms, _MIN)
        return self.prefix(minute) + self.tail[rest]


def network_hosts(spec: NetSpec) -> list[str]:
    """Every address the generator may emit for ``spec`` (for verification)."""
    return [_host(spec, k) for k in range(spec.hosts)]


def _host(spec: NetSpec, k: int) -> str:
    """The k-th host of a range: spread over it, never its network address."""
    net = ipaddress.ip_network(spec.cidr)
    size = net.num_addresses
    if net.version == 6:  # one /64 per host with a SLAAC-looking interface id
        stride = (size // spec.hosts) >> 64 << 64
        return str(ipaddress.IPv6Address(int(net.network_address) + k * stride + (_mix64(k) | 1)))
    stride = max(1, (size - 2) // spec.hosts)
    addr = int(net.network_address) + k * stride + 1
    if stride > 3:
        addr += (k * 2654435761) % (stride - 2)
    return str(ipaddress.IPv4Address(addr))


class _Weighted:
    """Cumulative-weight sampler (bisect): popularity-skewed choices."""

    __slots__ = ("_cum", "_total")

    def __init__(self, weights: Sequence[float]) -> None:
        self._cum = list(accumulate(weights))
        self._total = self._cum[-1]

    def pick(self, rng: random.Random) -> int:
        return bisect_right(self._cum, rng.random() * self._total)


def _log_uniform_index(rng: random.Random, n: int) -> int:
    """Index in [0, n) with P(k) ~ 1/(k+1): a cheap Zipf for hosts and users."""
    return min(n - 1, int((n + 1) ** rng.random()) - 1)


# --------------------------------------------------------------------------
# Generator state
# --------------------------------------------------------------------------


@dataclass(slots=True)
class _Endpoint:
    """An IP as used by sessions, with the facts the generator needs about it."""

    ip: str
    asn: int | None
    net: int
    v6: bool
    private: bool


@dataclass(slots=True)
class _User:
    tenant: int
    user_d: dict[str, Any]
    conn: int
    org: int | None
    client: int
    home: _Endpoint
    ua: int
    mobile: tuple[_Endpoint, int] | None  # second device: (endpoint, ua)
    rest_b: dict[int, bytes] = field(default_factory=dict)  # client -> serialised tail


@dataclass(slots=True)
class _Session:
    """Per-session state; JSON fragments are serialised once, not per event."""

    sid: str
    scenario: str
    length: int
    change_idx: int  # first event index with the "after" values; length if none
    mid_stream: bool
    logout: bool
    tenant: str
    user_id: str
    abs_end_ms: int
    idle_min: int  # idle timeout in whole minutes (all configured values are)
    idle_cap: float  # longest allowed gap between two events
    abs_end_b: bytes  # formatted expiry, used when the idle expiry would pass it
    before: _Endpoint
    after: _Endpoint
    ua_before: int
    ua_after: int
    head_b: bytes  # '","tenant":...,"session":{"id":"s-..."'
    full_b: bytes  # ',"created_at":...,"idle_expires_at":"'
    created_b: bytes  # ',"created_at":...,"authenticated_at":...}'
    rest_b: bytes  # ',"user":...,"client_id":...,"connection":...[,"organization":...]'
    req_before: tuple[bytes, bytes | None]  # (without asn, with asn)
    req_after: tuple[bytes, bytes | None]
    asn_supplied: bool
    i: int = 0
    valid_before: bool = False
    realized: bool = False
    change_at: bytes | None = None


_ARRIVAL: Final = 0
_EVENT: Final = 1
_DUP: Final = 2
_TYPE_B: Final[tuple[bytes, ...]] = tuple(t.encode() for t in EVENT_TYPES)
_LOGIN, _SILENT, _REFRESH, _INTERACTION, _LOGOUT = range(5)


@dataclass(slots=True)
class Stats:
    """What was actually written; the demo README quotes these numbers."""

    lines: int = 0
    valid_events: int = 0
    malformed: dict[str, int] = field(default_factory=lambda: dict.fromkeys(MALFORMED_KINDS, 0))
    duplicates: int = 0
    sessions: int = 0
    scenarios: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SCENARIOS, 0))
    # Sessions whose change is visible: a valid event before it and one after.
    realized: dict[str, int] = field(default_factory=lambda: dict.fromkeys(SCENARIOS[1:], 0))
    mid_stream: int = 0
    logout_sessions: int = 0
    asn_supplied_sessions: int = 0
    types: dict[str, int] = field(default_factory=lambda: dict.fromkeys(EVENT_TYPES, 0))
    ipv6_events: int = 0
    private_events: int = 0
    no_created_at_events: int = 0
    first_at: str | None = None
    last_at: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


class _Generator:
    """One generation run; all randomness flows through ``self.rng``."""

    def __init__(self, cfg: Config, labels: IO[bytes] | None) -> None:
        if cfg.events < 0 or cfg.sessions < 0:
            raise ValueError("events and sessions must be >= 0")
        if cfg.events > 0 and cfg.sessions < 1:
            raise ValueError("need at least one session for a non-empty log")
        if len(cfg.scenario_weights) != len(SCENARIOS):
            raise ValueError(f"scenario_weights needs {len(SCENARIOS)} values")
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)
        self.labels = labels
        self.fmt = _TimeFormatter()
        self.stats = Stats()
        self.start_ms = parse_time_ms(cfg.start)
        self.sid_salt = _mix64(cfg.seed & _M64)
        self.eid_fmt = f"evt-{cfg.seed}-%07d".encode()

        nets = NETWORKS
        self.public = [i for i, n in enumerate(nets) if n.kind != "private"]
        self.net_pick = _Weighted([n.weight for n in nets])
        self.public_pick = _Weighted([nets[i].weight for i in self.public])
        self.mobile_nets = [i for i, n in enumerate(nets) if n.kind == "mobile"]
        self.mobile_pick = _Weighted([nets[i].weight for i in self.mobile_nets])
        self.odd_nets = [i for i, n in enumerate(nets) if n.kind in ("hosting", "isp", "mobile")]
        self.by_asn: dict[int, list[int]] = {}
        for i, n in enumerate(nets):
            if n.asn is not None:
                self.by_asn.setdefault(n.asn, []).append(i)
        self.endpoints: dict[tuple[int, int], _Endpoint] = {}
        self.req_cache: dict[tuple[str, int, int], bytes] = {}

        uas = USER_AGENTS
        self.ua_pick = _Weighted([u.weight for u in uas])
        self.desktop = [i for i, u in enumerate(uas) if not u.mobile]
        self.desktop_pick = _Weighted([uas[i].weight for i in self.desktop])
        self.mobile_ua = [i for i, u in enumerate(uas) if u.mobile]
        self.mobile_ua_pick = _Weighted([uas[i].weight for i in self.mobile_ua])
        self.newer: list[list[int]] = []
        self.older: list[list[int]] = []
        for u in uas:
            same = [j for j, v in enumerate(uas) if (v.family, v.os) == (u.family, u.os)]
            self.newer.append([j for j in same if uas[j].version > u.version])
            self.older.append([j for j in same if uas[j].version < u.version])

        self.scenario_pick = _Weighted(cfg.scenario_weights)
        self.tenant_pick = _Weighted([t.weight for t in TENANTS])
        self.conn_picks = [_Weighted([c.weight for c in t.connections]) for t in TENANTS]
        self.org_picks = [_Weighted([o.weight for o in t.organizations] + [t.no_org_weight])
                          for t in TENANTS]
        self.conn_dicts = [[self._conn_dict(c) for c in t.connections] for t in TENANTS]
        self.org_dicts = [[self._org_dict(o) for o in t.organizations] for t in TENANTS]
        self.tenant_heads = [b'","tenant":' + orjson.dumps(t.name) + b',"session":{"id":"'
                             for t in TENANTS]

        n_users = max(1, min(cfg.sessions, cfg.events) * 2 // 5) if cfg.events > 0 else 0
        self.users = [self._make_user() for _ in range(n_users)]

        self.spawned = 0
        self.committed = 0  # events planned for the sessions spawned so far
        self.malformed_seen = 0
        sessions_expected = max(1.0, min(cfg.sessions, cfg.events) * 0.9)
        self.arrival_mean_ms = max(1.0, cfg.span_hours * _H / sessions_expected)

    # ---- building blocks ----------------------------------------------------

    @staticmethod
    def _conn_dict(c: Connection) -> dict[str, Any]:
        d: dict[str, Any] = {"name": c.name}
        if c.session_timeout_ms is not None:
            d["metadata"] = {"session_timeout": str(c.session_timeout_ms)}
        return d

    @staticmethod
    def _org_dict(o: Organization) -> dict[str, Any]:
        d: dict[str, Any] = {"id": o.id, "name": o.name}
        if o.idle_timeout_ms is not None:
            d["metadata"] = {"idle_session_timeout": str(o.idle_timeout_ms)}
        return d

    def _endpoint(self, net: int, k: int | None = None) -> _Endpoint:
        spec = NETWORKS[net]
        if k is None:
            k = _log_uniform_index(self.rng, spec.hosts)
        ep = self.endpoints.get((net, k))
        if ep is None:
            ip = _host(spec, k)
            ep = _Endpoint(ip, spec.asn, net, ":" in ip, spec.kind == "private")
            self.endpoints[(net, k)] = ep
        return ep

    def _request_b(self, ep: _Endpoint, ua: int, asn_mode: int) -> bytes:
        """Serialised ``"request"`` member plus the closing brace and newline."""
        key = (ep.ip, ua, asn_mode)
        b = self.req_cache.get(key)
        if b is None:
            req: dict[str, Any] = {"ip": ep.ip, "user_agent": USER_AGENTS[ua].ua}
            if asn_mode and ep.asn is not None:  # IdPs send either "AS1221" or "1221"
                req["asn"] = f"AS{ep.asn}" if asn_mode == 1 else str(ep.asn)
            b = b',"request":' + orjson.dumps(req) + b"}\n"
            if len(self.req_cache) > 100_000:
                self.req_cache.clear()
            self.req_cache[key] = b
        return b

    def _requests(self, ep: _Endpoint, ua: int, asn_mode: int) -> tuple[bytes, bytes | None]:
        with_asn = None
        if asn_mode and ep.asn is not None:
            with_asn = self._request_b(ep, ua, asn_mode)
        return self._request_b(ep, ua, 0), with_asn

    def _user_id(self, prefix: str) -> str:
        """A user id shaped like the connection's real ones."""
        rng = self.rng
        if prefix == "auth0|":
            return f"auth0|{rng.getrandbits(96):024x}"
        if prefix == "google-oauth2|":
            return f"google-oauth2|1{rng.randrange(10**20):020d}"
        if prefix == "github|":
            return f"github|{rng.randrange(10**6, 10**8)}"
        if prefix == "waad|":
            return f"waad|{rng.getrandbits(128):032x}"
        if prefix.startswith("ad|"):
            h = f"{rng.getrandbits(128):032x}"
            return f"{prefix}{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
        return f"{prefix}00u{rng.getrandbits(64):016x}"  # Okta-style SAML subject

    def _make_user(self) -> _User:
        rng = self.rng
        t = self.tenant_pick.pick(rng)
        tenant = TENANTS[t]
        conn = self.conn_picks[t].pick(rng)
        org_i = self.org_picks[t].pick(rng)
        org = org_i if org_i < len(tenant.organizations) else None
        groups: list[str] = []
        r = rng.random()
        if r < 0.04:
            groups.append("admins")
        elif (org is not None and tenant.organizations[org].name == "contractors") or r > 0.93:
            groups.append("contractors")
        if rng.random() < 0.5:
            groups.append(("engineering", "sales", "finance", "support")[rng.randrange(4)])
        user_d: dict[str, Any] = {"id": self._user_id(tenant.connections[conn].user_prefix)}
        if groups:
            user_d["groups"] = groups
        home = self._endpoint(self.net_pick.pick(rng))
        if rng.random() < 0.85:
            ua = self.desktop[self.desktop_pick.pick(rng)]
        else:
            ua = self.mobile_ua[self.mobile_ua_pick.pick(rng)]
        mobile = None
        if rng.random() < 0.4:
            mobile = (self._endpoint(self.mobile_nets[self.mobile_pick.pick(rng)]),
                      self.mobile_ua[self.mobile_ua_pick.pick(rng)])
        client = rng.randrange(len(tenant.clients))
        return _User(t, user_d, conn, org, client, home, ua, mobile)

    def _rest_b(self, user: _User, client: int) -> bytes:
        """Serialised user/client/connection/organization members (per user)."""
        b = user.rest_b.get(client)
        if b is None:
            tenant = TENANTS[user.tenant]
            b = (b',"user":' + orjson.dumps(user.user_d)
                 + b',"client_id":' + orjson.dumps(tenant.clients[client])
                 + b',"connection":' + orjson.dumps(self.conn_dicts[user.tenant][user.conn]))
            if user.org is not None:
                b += b',"organization":' + orjson.dumps(self.org_dicts[user.tenant][user.org])
            user.rest_b[client] = b
        return b

    # ---- sessions -----------------------------------------------------------

    def _session_length(self, scenario: str) -> int:
        """Skewed 1-50 (many short, few long), mean steered to fill the budget."""
        cfg, rnd = self.cfg, self.rng.random
        need = cfg.events - self.committed
        left = cfg.sessions - self.spawned
        if left <= 1:  # the last allowed session takes what is left
            return max(1 if scenario == "stable" else 3, need)
        mean = max(1.0, need / left * 1.1)
        tail_mean = max(0.0, (mean - 0.7) / 0.65 - 1.0)
        cap = max(50, int(3 * mean))
        while True:
            if rnd() < 0.35:  # many short sessions (1-3 events)
                length = 1 + int(rnd() * 3)
            else:  # exponential tail (expovariate inlined: runs once per session)
                length = min(cap, 1 + int(-math.log(1.0 - rnd()) * tail_mean))
            # A change needs events before and after it: condition, don't clamp.
            if length >= 3 or scenario == "stable":
                return length

    def _other_ip_same_asn(self, ep: _Endpoint) -> _Endpoint:
        rng = self.rng
        assert ep.asn is not None
        siblings = [n for n in self.by_asn[ep.asn] if n != ep.net]
        while True:
            net = ep.net
            if siblings and rng.random() < 0.5:
                net = siblings[rng.randrange(len(siblings))]
            cand = self._endpoint(net, rng.randrange(NETWORKS[net].hosts))
            if cand.ip != ep.ip:
                return cand

    def _other_asn(self, ep: _Endpoint) -> _Endpoint:
        rng = self.rng
        while True:
            if rng.random() < 0.4:  # hijacks often come from hosting/foreign ISPs
                net = self.odd_nets[rng.randrange(len(self.odd_nets))]
            else:
                net = self.public[self.public_pick.pick(rng)]
            if NETWORKS[net].asn != ep.asn:
                return self._endpoint(net)

    def _other_device(self, ua: int) -> int:
        rng = self.rng
        u = USER_AGENTS[ua]
        while True:
            v = USER_AGENTS[j := self.ua_pick.pick(rng)]
            if (v.family, v.os) != (u.family, u.os):
                return j

    def _pick_version_change(self, ua: int, newer: bool) -> tuple[int, int]:
        """(before, after) UAs of one family/OS, after newer (or older) than before."""
        rng = self.rng
        target, other = (self.newer, self.older) if newer else (self.older, self.newer)
        if not target[ua]:  # e.g. already the latest: start from another build
            pool = other[ua] or [j for j in range(len(USER_AGENTS)) if target[j]]
            ua = pool[rng.randrange(len(pool))]
        return ua, target[ua][rng.randrange(len(target[ua]))]

    def _spawn(self, t: int) -> _Session:
        rng = self.rng
        scenario = SCENARIOS[self.scenario_pick.pick(rng)]
        length = self._session_length(scenario)
        self.committed += length
        index = self.spawned
        self.spawned += 1

        users = self.users
        if rng.random() < 0.5:
            user = users[rng.randrange(len(users))]
        else:  # a few heavy users
            user = users[_log_uniform_index(rng, len(users))]
        tenant = TENANTS[user.tenant]
        if user.mobile is not None and rng.random() < 0.3:
            ep, ua = user.mobile
        elif rng.random() < 0.85:
            ep, ua = user.home, user.ua
        else:  # travelling, cafe, hotel...
            ep, ua = self._endpoint(self.net_pick.pick(rng)), user.ua
        if scenario in IP_SCENARIOS and ep.asn is None:  # IP changes need a resolvable IP
            ep = self._endpoint(self.public[self.public_pick.pick(rng)])

        after, ua_after = ep, ua
        if scenario == "ip_same_asn":
            after = self._other_ip_same_asn(ep)
        elif scenario == "asn_change":
            after = self._other_asn(ep)
        elif scenario == "asn_device_change":
            after, ua_after = self._other_asn(ep), self._other_device(ua)
        elif scenario == "device_change":
            ua_after = self._other_device(ua)
        elif scenario in ("browser_update", "browser_downgrade"):
            ua, ua_after = self._pick_version_change(ua, scenario == "browser_update")
        change_idx = length if scenario == "stable" else 1 + int(rng.random() * (length - 1))

        conn = tenant.connections[user.conn]
        org = tenant.organizations[user.org] if user.org is not None else None
        # The IdP clamps a connection's timeout (e.g. 30 days) to the tenant maximum.
        abs_ms = min(conn.session_timeout_ms or tenant.session_ms, tenant.max_session_ms)
        idle_ms = (org.idle_timeout_ms if org is not None else None) or tenant.idle_ms
        # Mid-stream: alive before it is first seen (mostly at the log's start).
        mid = rng.random() < (0.5 if t - self.start_ms < _H else 0.05)
        created = t - int(abs_ms * (0.05 + 0.45 * rng.random())) if mid else t
        client = user.client if rng.random() < 0.8 else rng.randrange(len(tenant.clients))
        r = rng.random()
        asn_mode = 1 if r < 0.1 else 2 if r < 0.2 else 0
        logout = length > 1 and rng.random() < 0.35

        sid = f"s-{_mix64((self.sid_salt + index) & _M64):016x}"
        c = b'"' + self.fmt(created) + b'"'
        created_part = b',"created_at":' + c + b',"authenticated_at":' + c
        abs_end_b = self.fmt(created + abs_ms)
        return _Session(
            sid, scenario, length, change_idx, mid, logout, tenant.name, user.user_d["id"],
            created + abs_ms, idle_ms // _MIN, idle_ms * 0.9, abs_end_b,
            ep, after, ua, ua_after,
            self.tenant_heads[user.tenant] + sid.encode() + b'"',
            created_part + b',"expires_at":"' + abs_end_b + b'","idle_expires_at":"',
            created_part + b"}",
            self._rest_b(user, client),
            self._requests(ep, ua, asn_mode),
            self._requests(after, ua_after, asn_mode),
            asn_mode != 0 and ep.asn is not None,
        )

    # ---- events -------------------------------------------------------------

    def _malformed(self, line: bytes) -> bytes:
        """Break a real event in one of the ways a log pipeline sees."""
        rng = self.rng
        if self.malformed_seen < len(MALFORMED_KINDS):  # every kind at least once
            kind = MALFORMED_KINDS[self.malformed_seen]
        else:
            kind = MALFORMED_KINDS[rng.randrange(len(MALFORMED_KINDS))]
        self.malformed_seen += 1
        self.stats.malformed[kind] += 1
        ev: dict[str, Any] = orjson.loads(line)
        if kind == "not_json":
            return (b"<html><head><title>502 Bad Gateway</title></head></html>\n",
                    b"upstream connect error or disconnect/reset before headers\n",
                    b"{'event_id': '" + ev["event_id"].encode() + b"', 'type': 'login'}\n",
                    )[rng.randrange(3)]
        if kind == "truncated":  # always loses at least the closing brace
            return line[: rng.randrange(10, len(line) - 2)] + b"\n"
        if kind == "empty_line":
            return b"\n"
        if kind == "missing_field":
            victim = REQUIRED_FIELDS[rng.randrange(len(REQUIRED_FIELDS))]
            if victim == "session.id":
                del ev["session"]["id"]
            elif victim == "request.ip":
                del ev["request"]["ip"]
            else:
                del ev[victim]
        elif kind == "bad_time":
            bad_times = ("2026-11-31T25:61:00Z", "27/11/2026 10:00", "not-a-date", "")
            ev["occurred_at"] = bad_times[rng.randrange(4)]
        elif kind == "invalid_ip":
            ev["request"]["ip"] = ("999.1.1.1", "null", None, "1.2.3", "::zz")[rng.randrange(5)]
        else:  # wrong_type
            ev["type"] = ("signup", "password_reset", "sso", 7)[rng.randrange(4)]
        return orjson.dumps(ev, option=orjson.OPT_APPEND_NEWLINE)

    def _label(self, s: _Session) -> None:
        """Ground truth for one session (only when ``--labels`` is asked for)."""
        if self.labels is None or s.i == 0:
            return
        rec = {
            "session_id": s.sid, "scenario": s.scenario, "tenant": s.tenant,
            "user_id": s.user_id, "mid_stream": s.mid_stream, "logout": s.logout,
            "events_planned": s.length, "events_emitted": s.i, "realized": s.realized,
            "change_at": s.change_at.decode() if s.change_at is not None else None,
            "ip_before": s.before.ip, "ip_after": s.after.ip,
            "asn_before": s.before.asn, "asn_after": s.after.asn,
            "ua_before": USER_AGENTS[s.ua_before].ua, "ua_after": USER_AGENTS[s.ua_after].ua,
        }
        self.labels.write(orjson.dumps(rec, option=orjson.OPT_APPEND_NEWLINE))

    def _first_emit(self, s: _Session) -> None:
        st = self.stats
        st.sessions += 1
        st.scenarios[s.scenario] += 1
        st.mid_stream += s.mid_stream
        st.logout_sessions += s.logout
        st.asn_supplied_sessions += s.asn_supplied

    def run(self, write: Callable[[bytes], object]) -> Stats:
        """Write exactly ``cfg.events`` lines through ``write`` (4096-line chunks).

        The heap holds session arrivals, each live session's next event and
        pending re-deliveries. Event lines are joined from per-session bytes
        fragments, and the loop uses locals, because it runs a million times.
        """
        cfg, rng, st, fmt = self.cfg, self.rng, self.stats, self.fmt
        minutes, tail, prefix = fmt.minutes, fmt.tail, fmt.prefix
        rnd, log = rng.random, math.log
        push, pop, replace_top = heapq.heappush, heapq.heappop, heapq.heapreplace
        eid_fmt, type_b = self.eid_fmt, _TYPE_B
        n_lines, mal_rate, dup_rate = cfg.events, cfg.malformed_rate, cfg.duplicate_rate
        heap: list[tuple[int, int, int, Any]] = []
        seq = 0
        if n_lines > 0:
            push(heap, (self.start_ms, seq, _ARRIVAL, None))
        types = [0] * len(EVENT_TYPES)
        written = event_no = valid = v6 = private = bare = dups = 0
        first_ts: bytes | None = None
        last_ts = b""
        buf: list[bytes] = []
        append = buf.append
        while written < n_lines and heap:
            t, _, kind, obj = heap[0]  # peek; replaced in one sift if the session goes on
            if kind == _EVENT:
                s: _Session = obj
                i = s.i
                if i == 0:
                    self._first_emit(s)
                    typ = _LOGIN
                    if s.mid_stream:  # logged in before the log started
                        r = rnd()
                        typ = _INTERACTION if r < 0.5 else _REFRESH if r < 0.85 else _SILENT
                elif i == s.length - 1 and s.logout:
                    typ = _LOGOUT
                else:
                    r = rnd()
                    typ = _INTERACTION if r < 0.55 else _REFRESH if r < 0.85 else _SILENT
                changed = i >= s.change_idx
                ep = s.after if changed else s.before
                req = s.req_after if changed else s.req_before
                event_no += 1
                minute, rest = divmod(t, _MIN)
                sec_ms = tail[rest]
                ts = (minutes.get(minute) or prefix(minute)) + sec_ms
                r = rnd()
                if r < 0.88:  # full session object, as an IdP sends it
                    if t + s.idle_min * _MIN < s.abs_end_ms:
                        idle_minute = minute + s.idle_min
                        idle_p = minutes.get(idle_minute) or prefix(idle_minute)
                        sess = b"".join((s.full_b, idle_p, sec_ms, b'"}'))
                    else:
                        sess = s.full_b + s.abs_end_b + b'"}'
                elif r < 0.95:  # no expiries
                    sess = s.created_b
                else:  # bare session id
                    sess = b"}"
                with_asn = req[1]
                req_b = with_asn if with_asn is not None and rnd() < 0.8 else req[0]
                line = b"".join((b'{"event_id":"', eid_fmt % event_no, b'","type":"', type_b[typ],
                                 b'","occurred_at":"', ts, s.head_b, sess, s.rest_b, req_b))
                if rnd() < mal_rate:
                    line = self._malformed(line)
                else:
                    valid += 1
                    types[typ] += 1
                    if ep.v6:
                        v6 += 1
                    elif ep.private:
                        private += 1
                    if r >= 0.95:
                        bare += 1
                    if first_ts is None:
                        first_ts = ts
                    last_ts = ts
                    if not changed:
                        s.valid_before = True
                    elif s.valid_before and not s.realized:
                        s.realized = True
                        s.change_at = ts
                        st.realized[s.scenario] += 1
                    if rnd() < dup_rate:  # at-least-once delivery: same bytes again soon
                        seq += 1
                        push(heap, (t + 200 + int(rnd() * 20_000), seq, _DUP, line))
                i += 1
                s.i = i
                remaining = s.length - i
                if remaining > 0:
                    # Bursts of activity plus long pauses, kept inside both timeouts.
                    gap = -log(1.0 - rnd()) * (60_000.0 if rnd() < 0.75 else 900_000.0)
                    cap = (s.abs_end_ms - t) * 0.9 / remaining
                    if cap > s.idle_cap:  # noqa: PLR1730 - min() is slower in this loop
                        cap = s.idle_cap
                    if gap > cap:  # noqa: PLR1730
                        gap = cap
                    seq += 1
                    replace_top(heap, (t + (int(gap) or 1), seq, _EVENT, s))
                else:
                    pop(heap)
                    self._label(s)
                append(line)
            elif kind == _DUP:
                pop(heap)
                dups += 1
                append(obj)
            else:  # a new session arrives; its first event is due at once
                s = self._spawn(t)
                seq += 1
                replace_top(heap, (t, seq, _EVENT, s))
                if self.spawned < cfg.sessions and self.committed < n_lines:
                    seq += 1
                    gap = -log(1.0 - rnd()) * self.arrival_mean_ms
                    push(heap, (t + 1 + int(gap), seq, _ARRIVAL, None))
                continue
            written += 1
            if len(buf) >= 4096:
                write(b"".join(buf))
                buf.clear()
        if buf:
            write(b"".join(buf))
        st.lines, st.valid_events, st.duplicates = written, valid, dups
        st.ipv6_events, st.private_events, st.no_created_at_events = v6, private, bare
        st.types = dict(zip(EVENT_TYPES, types, strict=True))
        st.first_at = first_ts.decode() if first_ts is not None else None
        st.last_at = last_ts.decode() if first_ts is not None else None
        # Sessions cut off by the end of the log still get their label.
        for _, _, kind, obj in sorted(heap, key=lambda e: (e[0], e[1])):
            if kind == _EVENT:
                self._label(obj)
        return st


def generate(cfg: Config, out: IO[bytes], labels: IO[bytes] | None = None) -> Stats:
    """Write ``cfg.events`` lines to ``out`` (and per-session ground truth to ``labels``)."""
    return _Generator(cfg, labels).run(out.write)


def generate_bytes(cfg: Config) -> tuple[bytes, Stats, list[dict[str, Any]]]:
    """The whole output, its stats and the per-session labels (tests, small logs)."""
    out, labels = io.BytesIO(), io.BytesIO()
    stats = generate(cfg, out, labels)
    return out.getvalue(), stats, [orjson.loads(x) for x in labels.getvalue().splitlines()]


# --------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------

DEMO_COMMAND: Final = "python data/generate_events.py --profile demo --out data/demo/events.jsonl"


def _parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Generate a seeded, realistic native-format session event log (JSONL).",
        epilog=f"Bundled demo log: {DEMO_COMMAND}",
    )
    p.add_argument("--profile", choices=sorted(PROFILES), default="bench",
                   help="defaults for every option below (default: bench)")
    p.add_argument("--events", type=int,
                   help="number of output lines, malformed and duplicate lines included")
    p.add_argument("--sessions", type=int, help="maximum number of sessions")
    p.add_argument("--seed", type=int)
    p.add_argument("--malformed-rate", type=float, dest="malformed_rate")
    p.add_argument("--duplicate-rate", type=float, dest="duplicate_rate")
    p.add_argument("--span-hours", type=float, dest="span_hours",
                   help="period over which sessions start")
    p.add_argument("--start", help="first session start, e.g. 2026-11-01T00:00:00Z")
    p.add_argument("--out", default="-", help="output file, or - for stdout")
    p.add_argument("--labels", help="also write per-session ground truth (JSONL) here")
    p.add_argument("--stats", action="store_true", help="print a JSON summary to stderr")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(argv)
    cfg = Config.from_profile(
        args.profile, events=args.events, sessions=args.sessions, seed=args.seed,
        malformed_rate=args.malformed_rate, duplicate_rate=args.duplicate_rate,
        span_hours=args.span_hours, start=args.start,
    )
    with contextlib.ExitStack() as stack:
        labels = stack.enter_context(open(args.labels, "wb")) if args.labels else None
        out = sys.stdout.buffer if args.out == "-" else stack.enter_context(open(args.out, "wb"))
        try:
            stats = generate(cfg, out, labels)
            out.flush()
        except BrokenPipeError:  # e.g. piped into `head`: not an error
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silences the exit-time flush
            return 0
    if args.stats:
        sys.stderr.write(orjson.dumps(stats.as_dict(), option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
