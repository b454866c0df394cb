"""Enrichment against the real MaxMind-format test databases and pyasn file."""

from __future__ import annotations

from pathlib import Path

import pytest

from detectors.model import EventType, SessionEvent, SessionInfo
from worker.enrich import Enricher, EnrichmentError
from worker.settings import Settings

DATA = Path(__file__).resolve().parents[2] / "data"


@pytest.fixture(scope="module")
def enricher() -> Enricher:
    s = Settings()
    return Enricher.from_settings(s)


def test_city_and_asn_from_mmdb(enricher: Enricher) -> None:
    net = enricher.network("89.160.20.112", None)
    assert (net.asn, net.asn_source, net.as_org) == (29518, "mmdb", "Bredband2 AB")
    assert (net.country, net.city) == ("SE", "Linköping")
    assert net.latitude == pytest.approx(58.4167)
    assert not net.private


def test_pyasn_answers_where_the_asn_database_has_none(enricher: Enricher) -> None:
    net = enricher.network("81.2.69.142", None)  # in City, not in GeoLite2-ASN-Test
    assert (net.asn, net.asn_source) == (20712, "pyasn")
    assert net.city == "London"
    assert "tor_exit_node" in net.anonymous


def test_idp_supplied_asn_is_used_as_given(enricher: Enricher) -> None:
    net = enricher.network("89.160.20.112", 1221)
    assert (net.asn, net.asn_source, net.country) == (1221, "idp", "SE")
    assert enricher.network("89.160.20.112", 29518).asn_source == "idp"
    assert enricher.network("89.160.20.112", None).asn_source == "mmdb"  # cache not polluted


@pytest.mark.parametrize("ip", ["10.0.0.1", "192.168.1.1", "127.0.0.1", "::1", "fe80::1",
                                "172.18.0.1", "100.64.0.1", "0.0.0.0"])
def test_private_and_reserved_addresses_are_flagged_not_looked_up(
        enricher: Enricher, ip: str) -> None:
    net = enricher.network(ip, None)
    assert net.private
    assert net.asn is None and net.country is None  # pyasn would say AS3303 for 192.168.1.1


def test_ipv6(enricher: Enricher) -> None:
    net = enricher.network("2600:6000::1", None)
    assert (net.asn, net.as_org) == (237, "Merit Network Inc.")
    assert enricher.network("2001:218::1", None).country == "JP"


def test_ipv4_mapped_ipv6_is_unwrapped(enricher: Enricher) -> None:
    assert enricher.network("::ffff:89.160.20.112", None).asn == 29518


def test_unknown_public_address(enricher: Enricher) -> None:
    net = enricher.network("203.0.113.9", None)  # TEST-NET-3: reserved
    assert net.private
    net = enricher.network("157.240.1.35", None)  # routed today, not in the 2014 table
    assert net.asn is None and not net.private


def test_lookups_are_cached(enricher: Enricher) -> None:
    enricher.lookup_ip.cache_clear()
    enricher.network("216.160.83.56", None)
    enricher.network("216.160.83.56", None)
    info = enricher.lookup_ip.cache_info()
    assert (info.hits, info.misses) == (1, 1)


def test_enrich_parses_the_user_agent(enricher: Enricher) -> None:
    ev = SessionEvent("e", EventType.LOGIN, 0, SessionInfo("s"), "216.160.83.56",
                      user_agent="Chrome 120.0.0 / Mac OS X 10.15.7")
    enriched = enricher.enrich(ev)
    assert enriched.agent is not None
    assert (enriched.agent.family, enriched.agent.os_family) == ("Chrome", "Mac OS X")
    assert enriched.network.asn == 209


def test_missing_database_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(EnrichmentError, match="not found"):
        Enricher(str(tmp_path / "nope.mmdb"), None, None)
    bad = tmp_path / "bad.mmdb"
    bad.write_bytes(b"not a database")
    with pytest.raises(EnrichmentError, match="cannot open"):
        Enricher(None, str(bad), None)
    with pytest.raises(EnrichmentError, match="pyasn database not found"):
        Enricher(None, None, str(tmp_path / "nope.dat"))


def test_without_databases_everything_is_unknown() -> None:
    net = Enricher(None, None, None).network("89.160.20.112", None)
    assert net.asn is None and net.country is None
