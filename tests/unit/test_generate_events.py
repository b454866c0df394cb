"""data/generate_events.py: determinism, format, realism and IP resolution.

The generator feeds the demo log and the benchmarks, so these tests pin what
consumers rely on: byte-identical output per seed, exact line counts, valid
lines that really are valid (and malformed ones that really are not), and IPs
whose ASN in the bundled test databases matches what each scenario claims.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import re
import subprocess
import sys
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import geoip2.database
import geoip2.errors
import maxminddb
import orjson
import pyasn
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ua_parser import parse as parse_ua

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "data" / "generate_events.py"
ASN_DB = ROOT / "data" / "mmdb" / "GeoLite2-ASN-Test.mmdb"
ANON_DB = ROOT / "data" / "mmdb" / "GeoIP2-Anonymous-IP-Test.mmdb"
PYASN_DB = ROOT / "data" / "pyasn" / "ipasn_20140513.dat.gz"
DEMO_LOG = ROOT / "data" / "demo" / "events.jsonl"
TS_RE = re.compile(rb"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{3}Z$")


def _load_generator() -> ModuleType:
    """Import the script by path (data/ is not a package)."""
    spec = importlib.util.spec_from_file_location("generate_events", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


gen = _load_generator()


class Resolver:
    """ASN the way the worker enriches: GeoLite2-ASN-Test first, else pyasn (IPv4)."""

    def __init__(self) -> None:
        self.mmdb = geoip2.database.Reader(str(ASN_DB))
        self.raw = maxminddb.open_database(str(ASN_DB))
        self.pyasn = pyasn.pyasn(str(PYASN_DB))

    def mmdb_asn(self, ip: str) -> int | None:
        try:
            return self.mmdb.asn(ip).autonomous_system_number
        except geoip2.errors.AddressNotFoundError:
            return None

    def pyasn_asn(self, ip: str) -> int | None:
        if ":" in ip:
            return None
        found, _prefix = self.pyasn.lookup(ip)
        return None if found is None else int(found)

    def asn(self, ip: str) -> int | None:
        found = self.mmdb_asn(ip)
        return found if found is not None else self.pyasn_asn(ip)


@pytest.fixture(scope="module")
def resolver() -> Resolver:
    return Resolver()


@cache
def _run(**overrides: Any) -> tuple[bytes, Any, list[dict[str, Any]]]:
    """One generation per distinct config per test session (they are shared)."""
    profile = overrides.pop("profile", "bench")
    result: tuple[bytes, Any, list[dict[str, Any]]] = gen.generate_bytes(
        gen.Config.from_profile(profile, **overrides))
    return result


def _demo() -> tuple[bytes, Any, list[dict[str, Any]]]:
    return _run(profile="demo")


def _small() -> tuple[bytes, Any, list[dict[str, Any]]]:
    return _run(events=4000, sessions=400, seed=11, malformed_rate=0.05, duplicate_rate=0.01)


def valid_event(line: bytes) -> dict[str, Any] | None:
    """The event if ``line`` meets the native format's requirements, else None."""
    try:
        ev = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(ev, dict):
        return None
    session, request = ev.get("session"), ev.get("request")
    ok = (
        isinstance(ev.get("event_id"), str) and ev["event_id"] != ""
        and ev.get("type") in gen.EVENT_TYPES
        and isinstance(ev.get("occurred_at"), str)
        and TS_RE.match(ev["occurred_at"].encode()) is not None
        and isinstance(session, dict) and isinstance(session.get("id"), str)
        and isinstance(request, dict) and isinstance(request.get("ip"), str)
    )
    if not ok:
        return None
    try:
        datetime.fromisoformat(ev["occurred_at"])
        ipaddress.ip_address(ev["request"]["ip"])
    except ValueError:
        return None
    return ev


def _first_deliveries(data: bytes) -> list[dict[str, Any]]:
    """Valid events in log order, re-deliveries (repeated event ids) dropped."""
    seen: set[str] = set()
    events = []
    for line in data.splitlines():
        ev = valid_event(line)
        if ev is not None and ev["event_id"] not in seen:
            seen.add(ev["event_id"])
            events.append(ev)
    return events


# ---------------------------------------------------------------- determinism


def test_same_config_gives_same_bytes_and_seed_matters() -> None:
    cfg = gen.Config.from_profile("bench", events=2000, sessions=200, seed=7)
    first, _, _ = gen.generate_bytes(cfg)
    second, _, _ = gen.generate_bytes(cfg)
    other, _, _ = gen.generate_bytes(gen.Config.from_profile("bench", events=2000,
                                                             sessions=200, seed=8))
    assert first == second
    assert first != other


def test_cli_is_byte_identical_across_processes_and_hash_seeds(tmp_path: Path) -> None:
    args = ["--events", "1500", "--sessions", "150", "--seed", "3", "--malformed-rate", "0.01"]
    env = dict(os.environ, PYTHONHASHSEED="12345")
    child = subprocess.run([sys.executable, str(SCRIPT), *args, "--out", "-"],
                           env=env, capture_output=True, check=True, timeout=60)
    out, labels = tmp_path / "events.jsonl", tmp_path / "labels.jsonl"
    assert gen.main([*args, "--out", str(out), "--labels", str(labels)]) == 0
    assert child.stdout == out.read_bytes()
    expected, _, expected_labels = gen.generate_bytes(gen.Config.from_profile(
        "bench", events=1500, sessions=150, seed=3, malformed_rate=0.01))
    assert out.read_bytes() == expected
    assert [orjson.loads(x) for x in labels.read_bytes().splitlines()] == expected_labels


def test_bundled_demo_log_matches_the_generator() -> None:
    """data/demo/events.jsonl must be regenerated when the generator changes."""
    assert DEMO_LOG.read_bytes() == _demo()[0], f"regenerate with: {gen.DEMO_COMMAND}"


# ---------------------------------------------------------------- counts and format


@pytest.mark.parametrize(("events", "sessions"), [(4000, 400), (500, 10), (30, 1000), (200, 1)])
def test_line_and_session_counts(events: int, sessions: int) -> None:
    data, stats, _ = _run(events=events, sessions=sessions, seed=5)
    lines = data.splitlines()
    assert len(lines) == events == stats.lines
    assert data.endswith(b"\n")
    session_ids = {ev["session"]["id"] for ev in map(valid_event, lines) if ev is not None}
    assert 1 <= len(session_ids) <= sessions
    assert stats.sessions <= sessions


def test_no_events_means_empty_output() -> None:
    data, stats, labels = _run(events=0, sessions=10, seed=1)
    assert data == b"" and stats.lines == 0 and labels == []


def test_valid_lines_are_well_formed_and_ordered() -> None:
    data, stats, _ = _small()
    by_id: dict[str, bytes] = {}
    valid = malformed = dups = 0
    last_time = ""
    for line in data.splitlines():
        ev = valid_event(line)
        if ev is None:
            malformed += 1
            continue
        valid += 1
        if ev["event_id"] in by_id:  # a re-delivery repeats the original verbatim
            assert by_id[ev["event_id"]] == line
            dups += 1
            continue
        by_id[ev["event_id"]] = line
        assert ev["occurred_at"] >= last_time, "first deliveries are ordered by occurred_at"
        last_time = ev["occurred_at"]
    assert malformed == sum(stats.malformed.values())
    assert dups == stats.duplicates
    assert valid - dups == stats.valid_events


def test_session_fields_are_consistent() -> None:
    sessions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for ev in _first_deliveries(_small()[0]):
        sessions[ev["session"]["id"]].append(ev)
    for evs in sessions.values():
        times = [ev["occurred_at"] for ev in evs]
        assert times == sorted(times) and len(set(times)) == len(times)
        assert all(ev["type"] != "logout" for ev in evs[:-1]), "logout ends a session"
        assert all(ev["type"] != "login" for ev in evs[1:])
        for ev in evs:
            sess = ev["session"]
            if "created_at" in sess:
                assert sess["created_at"] <= ev["occurred_at"]
                assert sess["authenticated_at"] == sess["created_at"]
                assert (ev["type"] == "login") == (sess["created_at"] == ev["occurred_at"])
            if "expires_at" in sess:
                assert ev["occurred_at"] < sess["idle_expires_at"] <= sess["expires_at"]
            for meta in (ev["connection"].get("metadata", {}),
                         ev.get("organization", {}).get("metadata", {})):
                assert all(isinstance(v, str) and v.isdigit() for v in meta.values())


def test_malformed_share_is_in_expected_range() -> None:
    data, stats, _ = _small()  # 4000 lines at 5 %: mean 200, sd ~14
    bad = sum(valid_event(line) is None for line in data.splitlines())
    assert 130 <= bad <= 270
    assert all(n > 0 for n in stats.malformed.values())


def test_worker_decoder_agrees_with_the_generator() -> None:
    """The worker's native decoder accepts exactly the lines meant to be valid."""
    formats = pytest.importorskip("worker.formats")
    from detectors.model import SessionEvent  # noqa: PLC0415 - project import, may be absent

    data = _demo()[0]
    for line in data.splitlines():
        outcomes = formats.decode_line(line)
        decoded = len(outcomes) == 1 and isinstance(outcomes[0], SessionEvent)
        assert decoded == (valid_event(line) is not None), line[:200]


# ---------------------------------------------------------------- realism


def test_demo_profile_covers_every_case() -> None:
    data, stats, _ = _demo()
    assert stats.lines == 3000 and stats.sessions <= 300
    assert all(n > 0 for n in stats.realized.values()), stats.realized
    assert all(n > 0 for n in stats.malformed.values()), stats.malformed
    assert stats.duplicates > 0 and stats.mid_stream > 0 and stats.logout_sessions > 0
    assert stats.ipv6_events > 0 and stats.private_events > 0
    assert stats.no_created_at_events > 0 and stats.asn_supplied_sessions > 0

    events = _first_deliveries(data)
    seen: Counter[str] = Counter()
    for ev in events:
        seen["tenant:" + ev["tenant"]] += 1
        seen["timeout:" + ev["connection"].get("metadata", {}).get("session_timeout", "-")] += 1
        org = ev.get("organization")
        seen["idle:" + (org.get("metadata", {}).get("idle_session_timeout", "-")
                        if org else "no-org")] += 1
        for group in ev["user"].get("groups", []):
            seen["group:" + group] += 1
        asn = ev["request"].get("asn")
        if asn is not None:
            seen["asn-form:" + ("AS" if asn.startswith("AS") else "plain")] += 1
    for key in ("tenant:acme", "tenant:globex", "timeout:28800000", "timeout:2592000000",
                "timeout:-", "idle:900000", "idle:3600000", "idle:-", "idle:no-org",
                "group:admins", "group:contractors", "asn-form:AS", "asn-form:plain"):
        assert seen[key] > 0, key
    assert len({ev["user"]["id"] for ev in events}) < stats.sessions


def test_sessions_are_skewed_short_with_a_long_tail() -> None:
    lengths = Counter(ev["session"]["id"] for ev in _first_deliveries(_run(
        events=5000, sessions=500, seed=2)[0]))
    sizes = sorted(lengths.values())
    assert sizes[-1] <= 50
    assert sum(n <= 3 for n in sizes) / len(sizes) > 0.3
    assert sum(n >= 20 for n in sizes) > 0


def test_ip_and_user_agent_popularity_is_skewed() -> None:
    events = _first_deliveries(_run(events=5000, sessions=500, seed=2)[0])
    for key in ("ip", "user_agent"):
        counts = sorted(Counter(ev["request"][key] for ev in events).values(), reverse=True)
        top = sum(counts[: max(1, len(counts) // 10)])
        assert top / sum(counts) > 0.3, key  # top 10 % of values carry > 30 % of events


def test_user_agent_table_matches_ua_parser() -> None:
    families: Counter[str] = Counter()
    for spec in gen.USER_AGENTS:
        result = parse_ua(spec.ua)
        assert result.user_agent is not None and result.os is not None
        ua = result.user_agent
        version = tuple(int(x) for x in (ua.major, ua.minor, ua.patch) if x is not None)
        assert (ua.family, result.os.family) == (spec.family, spec.os), spec.ua
        assert version[: len(spec.version)] == spec.version, spec.ua
        families[spec.family] += 1
    assert len(gen.USER_AGENTS) >= 30
    assert all(families[f] >= 2 for f in ("Chrome", "Edge", "Firefox", "Safari", "Mobile Safari"))


# ---------------------------------------------------------------- IP resolution


def test_network_table_resolves_in_bundled_databases(resolver: Resolver) -> None:
    """Every host the generator can emit resolves to the ASN its range claims."""
    for spec in gen.NETWORKS:
        net = ipaddress.ip_network(spec.cidr)
        hosts = gen.network_hosts(spec)
        assert len(set(hosts)) == spec.hosts >= 4, spec
        for host in hosts:
            assert ipaddress.ip_address(host) in net
            mmdb, pyasn_asn = resolver.mmdb_asn(host), resolver.pyasn_asn(host)
            if spec.kind == "private":
                assert ipaddress.ip_address(host).is_private
                assert mmdb is None and pyasn_asn is None, host
                continue
            assert resolver.asn(host) == spec.asn, (spec, host)
            assert (mmdb is not None) == (spec.source == "mmdb"), (spec, host)
            if net.version == 4:  # both sources agree, whichever the worker asks
                assert pyasn_asn == spec.asn, (spec, host)


def test_only_ranges_marked_so_are_anonymizers() -> None:
    """GeoIP2-Anonymous-IP-Test flags 81.2.69.0/24; the worker alerts on it."""
    with maxminddb.open_database(str(ANON_DB)) as anon:
        for spec in gen.NETWORKS:
            for host in gen.network_hosts(spec):
                record = anon.get(host)
                flagged = isinstance(record, dict) and any(record.values())
                assert flagged == ("Anonymous-IP" in spec.note), (spec, host)


def test_emitted_ips_resolve_and_idp_asn_matches(resolver: Resolver) -> None:
    for data in (_demo()[0], _small()[0]):
        for ev in _first_deliveries(data):
            ip = ev["request"]["ip"]
            asn = resolver.asn(ip)
            if ipaddress.ip_address(ip).is_private:
                assert asn is None and "asn" not in ev["request"], ip
                continue
            assert asn is not None, ip
            if "asn" in ev["request"]:
                assert int(ev["request"]["asn"].removeprefix("AS")) == asn


def _ua_key(ua: str) -> tuple[str, str, tuple[int, ...]]:
    result = parse_ua(ua)
    assert result.user_agent is not None and result.os is not None
    u = result.user_agent
    version = tuple(int(x) for x in (u.major, u.minor, u.patch) if x is not None)
    return u.family, result.os.family, version


def test_scenarios_change_what_they_claim(resolver: Resolver) -> None:
    data, _, labels = _demo()
    sessions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for ev in _first_deliveries(data):
        sessions[ev["session"]["id"]].append(ev)
    checked: Counter[str] = Counter()
    for label in labels:
        evs = sessions[label["session_id"]]
        scenario = label["scenario"]
        if scenario == "stable":
            assert len({(e["request"]["ip"], e["request"]["user_agent"]) for e in evs}) <= 1
            continue
        if not label["realized"]:
            continue
        change_at = label["change_at"]
        for e in evs:
            side = "after" if e["occurred_at"] >= change_at else "before"
            assert e["request"]["ip"] == label["ip_" + side]
            assert e["request"]["user_agent"] == label["ua_" + side]
        asn_before, asn_after = resolver.asn(label["ip_before"]), resolver.asn(label["ip_after"])
        assert (asn_before, asn_after) == (label["asn_before"], label["asn_after"])
        ua_before, ua_after = _ua_key(label["ua_before"]), _ua_key(label["ua_after"])
        same_device = ua_before[:2] == ua_after[:2]
        if scenario == "ip_same_asn":
            assert label["ip_before"] != label["ip_after"] and asn_before == asn_after
            assert asn_before is not None and ua_before == ua_after
        elif scenario in ("asn_change", "asn_device_change"):
            assert None not in (asn_before, asn_after) and asn_before != asn_after
            assert (ua_before == ua_after) == (scenario == "asn_change")
            assert same_device == (scenario == "asn_change")
        else:
            assert label["ip_before"] == label["ip_after"]
            if scenario == "device_change":
                assert not same_device
            else:
                assert same_device
                newer = ua_after[2] > ua_before[2]
                assert newer == (scenario == "browser_update"), label
        checked[scenario] += 1
    assert set(checked) == set(gen.SCENARIOS) - {"stable"}


# ---------------------------------------------------------------- helpers


_FMT = gen._TimeFormatter()  # building its tables takes a while: share one


@settings(max_examples=300, deadline=None)
@given(st.integers(min_value=-(10**12), max_value=4 * 10**12))
def test_time_formatter_matches_datetime(ms: int) -> None:
    expected = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ms)
    text = _FMT(ms).decode()
    assert text == expected.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    assert gen.parse_time_ms(text) == ms


def test_idle_timeouts_are_whole_minutes() -> None:
    """The hot loop formats idle expiries by shifting whole minutes."""
    for tenant in gen.TENANTS:
        assert tenant.idle_ms % 60_000 == 0
        assert all(o.idle_timeout_ms is None or o.idle_timeout_ms % 60_000 == 0
                   for o in tenant.organizations)
