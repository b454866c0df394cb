"""data/generate_labelled.py: the labelled corpus means what its labels say.

Every address is re-resolved through the worker's own enrichment (bundled
databases, worker lookup order) and the network classification data, so a
scenario called "hosting", "Tor", "same operator" or "flight" really is that
for the worker; flights are re-measured from the City database's locations.
"""

from __future__ import annotations

import importlib.util
import io
import itertools
import sys
from collections import Counter, defaultdict
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import Any

import orjson
import pytest
from ua_parser import parse as parse_ua

from detectors.travel import distance_km
from worker.enrich import Enricher
from worker.netclass import NetClassifier
from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("generate_labelled",
                                                  ROOT / "data" / "generate_labelled.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


lab = _load()


@cache
def _corpus(**kw: Any) -> tuple[bytes, list[dict[str, Any]], dict[str, Any]]:
    out, labels = io.BytesIO(), io.BytesIO()
    summary = lab.generate(lab.Config(**kw), out, labels)
    return (out.getvalue(), [orjson.loads(x) for x in labels.getvalue().splitlines()], summary)


def _small() -> tuple[bytes, list[dict[str, Any]], dict[str, Any]]:
    return _corpus(benign_per_scenario=3, hijack_per_scenario=3, history_days=5, seed=4)


@pytest.fixture(scope="module")
def enricher() -> Enricher:
    return Enricher.from_settings(Settings())


@pytest.fixture(scope="module")
def netclass() -> NetClassifier:
    return NetClassifier.from_dir()


def test_deterministic_and_seed_dependent() -> None:
    a = _small()[0]
    out = io.BytesIO()
    lab.generate(lab.Config(benign_per_scenario=3, hijack_per_scenario=3, history_days=5,
                            seed=4), out, io.BytesIO())
    assert out.getvalue() == a
    b = _corpus(benign_per_scenario=3, hijack_per_scenario=3, history_days=5, seed=5)[0]
    assert a != b


def test_sizes_are_configurable_and_every_scenario_is_there() -> None:
    events, labels, summary = _small()
    evaluated = Counter(r["scenario"] for r in labels if r["phase"] == "evaluation")
    assert evaluated == dict.fromkeys(lab.SCENARIOS, 3)
    assert summary["events"] == len(events.splitlines())
    assert summary["sessions"] == len(labels)
    bigger = _corpus(benign_per_scenario=5, hijack_per_scenario=1, history_days=5, seed=4)[1]
    count = Counter(r["scenario"] for r in bigger if r["phase"] == "evaluation")
    assert all(count[s] == 5 for s in lab.BENIGN) and all(count[s] == 1 for s in lab.HIJACK)
    # The lists: at least these behaviours are covered.
    assert {"same_network", "browser_update", "isp_ip_change", "cgnat_ip_change",
            "ipv6_privacy_rotation", "wifi_cellular_other_operator",
            "wifi_cellular_same_operator", "long_haul_flight", "vpn_starts_off",
            "vpn_starts_on", "os_update"} <= set(lab.BENIGN)
    assert len(lab.HIJACK) == 6


def test_events_are_time_ordered_native_records_and_match_labels() -> None:
    events, labels, _ = _small()
    parsed = [orjson.loads(x) for x in events.splitlines()]
    times = [e["occurred_at"] for e in parsed]
    assert times == sorted(times)
    assert len({e["event_id"] for e in parsed}) == len(parsed)
    by_session: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for e in parsed:
        assert {"event_id", "type", "occurred_at", "session", "request"} <= set(e)
        by_session[e["session"]["id"]].append(e)
    assert set(by_session) == {r["session_id"] for r in labels}
    for r in labels:
        evs = by_session[r["session_id"]]
        assert len(evs) == r["events"] and evs[0]["event_id"] == r["first_event_id"]
        assert evs[-1]["event_id"] == r["last_event_id"]
        assert all(e["user"]["id"] == r["user_id"] for e in evs)
        assert (r["label"] == "hijack") == bool(r["attacker_event_ids"])


def test_learning_period_precedes_each_users_evaluated_session() -> None:
    events, labels, _ = _small()
    first = {}
    for line in events.splitlines():
        e = orjson.loads(line)
        first.setdefault(e["session"]["id"], e["occurred_at"])
    by_user: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in labels:
        by_user[r["user_id"]].append(r)
    for sessions in by_user.values():
        evaluated = [r for r in sessions if r["phase"] == "evaluation"]
        learning = [r for r in sessions if r["phase"] == "learning"]
        assert len(evaluated) == 1 and len(learning) >= 1
        assert all(r["label"] == "benign" and r["scenario"] == "history" for r in learning)
        assert max(first[r["session_id"]] for r in learning) < first[evaluated[0]["session_id"]]


def test_every_host_resolves_as_its_range_says(enricher: Enricher,
                                               netclass: NetClassifier) -> None:
    for net in lab.NETS.values():
        for ip in lab.net_hosts(net):
            n = enricher.network(ip, net.asn if net.idp_asn else None)
            assert n.asn == net.asn, (net.name, ip, n.asn)
            assert not n.private
            if net.lat is not None:
                assert (n.country, n.latitude, n.longitude) == (net.country, net.lat, net.lon), ip
            assert n.anonymous == net.anonymous, (net.name, ip, n.anonymous)
            cls = netclass.classify(n.asn)
            assert cls.hosting == (net.kind == "hosting"), (net.name, n.asn)
            if net.operator is not None:
                assert cls.operator == net.operator


def _sessions(events: bytes) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in events.splitlines():
        e = orjson.loads(line)
        out[e["session"]["id"]].append(e)
    return out


def _asn(enricher: Enricher, e: dict[str, Any]) -> int | None:
    idp = e["request"].get("asn")
    return enricher.network(e["request"]["ip"],
                            int(idp.removeprefix("AS")) if idp else None).asn


def test_benign_scenarios_are_what_they_claim(enricher: Enricher,
                                              netclass: NetClassifier) -> None:
    events, labels, _ = _corpus(benign_per_scenario=6, hijack_per_scenario=0, history_days=2,
                                seed=8)
    sessions = _sessions(events)
    for r in (r for r in labels if r["phase"] == "evaluation"):
        evs = sessions[r["session_id"]]
        ips = [e["request"]["ip"] for e in evs]
        uas = [e["request"]["user_agent"] for e in evs]
        asns = [_asn(enricher, e) for e in evs]
        sc = r["scenario"]
        if sc == "same_network":
            assert len(set(ips)) == 1 and len(set(uas)) == 1
        elif sc in ("browser_update", "os_update"):
            assert len(set(ips)) == 1 and len(set(uas)) == 2
            old, new = (parse_ua(u) for u in dict.fromkeys(uas))
            assert old.user_agent and new.user_agent and old.os and new.os
            assert old.user_agent.family == new.user_agent.family
            assert old.os.family == new.os.family
            if sc == "browser_update":
                assert int(new.user_agent.major) > int(old.user_agent.major)
            else:
                assert (old.os.major, old.os.minor) != (new.os.major, new.os.minor)
        elif sc in ("isp_ip_change", "cgnat_ip_change"):
            assert len(set(ips)) > 1 and len(set(asns)) == 1 and len(set(uas)) == 1
        elif sc == "ipv6_privacy_rotation":
            prefixes = {ip.rsplit(":", 4)[0] for ip in ips}
            assert all(":" in ip for ip in ips) and len(set(ips)) > 1 and len(prefixes) == 1
        elif sc.startswith("wifi_cellular"):
            kinds = [netclass.classify(a).mobile for a in asns]
            assert len(set(asns)) == 2 and len(set(uas)) == 1
            if sc == "wifi_cellular_same_operator":
                assert any(kinds) and netclass.same_operator(*set(asns))
            else:
                assert not netclass.same_operator(*set(asns))
        elif sc == "long_haul_flight":
            located = [(e, enricher.network(e["request"]["ip"], None)) for e in evs]
            for (e1, n1), (e2, n2) in itertools.pairwise(located):
                assert n1.latitude is not None and n2.latitude is not None
                assert n1.longitude is not None and n2.longitude is not None
                km = distance_km(n1.latitude, n1.longitude, n2.latitude, n2.longitude)
                hours = (lab.ge.parse_time_ms(e2["occurred_at"])
                         - lab.ge.parse_time_ms(e1["occurred_at"])) / 3_600_000
                assert km / hours <= 1000.0  # a flight is never impossible
            assert r["facts"]["distance_km"] > 5000 and not r["stays_in_known_countries"]
        elif sc.startswith("vpn_"):
            exit_cidr = r["facts"]["vpn_exit_cidr"]
            on = [lab.ipaddress.ip_address(ip) in lab.ipaddress.ip_network(exit_cidr)
                  for ip in ips]
            assert on[0] == (sc == "vpn_starts_on") and any(on) and not all(on)


def test_hijacks_are_what_they_claim(enricher: Enricher, netclass: NetClassifier) -> None:
    events, labels, _ = _corpus(benign_per_scenario=0, hijack_per_scenario=8, history_days=2,
                                seed=3)
    sessions = _sessions(events)
    for r in (r for r in labels if r["label"] == "hijack"):
        evs = sessions[r["session_id"]]
        attack = set(r["attacker_event_ids"])
        first = next(e for e in evs if e["event_id"] in attack)
        assert first["event_id"] == r["attack_event_id"]
        assert first["occurred_at"] == r["attack_at"]
        victim = evs[0]
        assert victim["event_id"] not in attack
        a_net = enricher.network(first["request"]["ip"], None)
        v_net = enricher.network(victim["request"]["ip"], None)
        a_ua, v_ua = first["request"]["user_agent"], victim["request"]["user_agent"]
        sc = r["scenario"]
        if sc == "cloud_same_ua":
            assert netclass.classify(a_net.asn).hosting and a_ua == v_ua
        elif sc == "other_isp_other_browser":
            assert a_net.asn != v_net.asn and not netclass.classify(a_net.asn).hosting
            assert parse_ua(a_ua).user_agent.family != parse_ua(v_ua).user_agent.family
        elif sc == "same_asn_other_device":
            assert a_net.asn == v_net.asn and a_net.ip != v_net.ip
            assert parse_ua(a_ua).os.family != parse_ua(v_ua).os.family
        elif sc == "tor":
            assert "tor_exit_node" in a_net.anonymous and a_ua == v_ua
        elif sc == "impossible_travel":
            assert a_net.latitude is not None and v_net.latitude is not None
            assert a_net.longitude is not None and v_net.longitude is not None
            last_victim = max((e for e in evs if e["occurred_at"] < first["occurred_at"]),
                              key=lambda e: e["occurred_at"])
            km = distance_km(v_net.latitude, v_net.longitude, a_net.latitude, a_net.longitude)
            hours = (lab.ge.parse_time_ms(first["occurred_at"])
                     - lab.ge.parse_time_ms(last_victim["occurred_at"])) / 3_600_000
            assert km / hours > 1000.0 and a_ua == v_ua
        else:
            assert sc == "automation_client"
            assert a_ua in lab.AUTOMATION_UAS and a_net.asn == v_net.asn


def test_cli_writes_events_and_labels(tmp_path: Path) -> None:
    out, labels = tmp_path / "e.jsonl", tmp_path / "l.jsonl"
    assert lab.main(["--out", str(out), "--labels", str(labels), "--benign-per-scenario", "1",
                     "--hijack-per-scenario", "1", "--history-days", "2"]) == 0
    assert out.stat().st_size > 0
    assert sum(1 for _ in labels.open()) == len(
        {orjson.loads(x)["session"]["id"] for x in out.read_bytes().splitlines()})
