"""Build real MaxMind-format databases for a test "world" (per-IP geo/ASN/anonymous facts).

The bundled MaxMind test databases know only a few synthetic networks, and
peer cases (``peer_panther``) assume enrichment for addresses they lack. This
helper writes City, ASN, Anonymous-IP and Connection-Type databases with
``mmdb-writer`` (MaxMind DB format 2.0), so a test reads them back through the
real ``geoip2`` readers the worker uses, exactly as it would read MaxMind's.

A world maps an IP (one host, or a CIDR) to::

    {"geo": {"city": ..., "country": "US", "lat": 40.7, "lon": -74.0, "accuracy_radius": 20},
     "asn": 22351, "as_org": "...", "anonymous": ["hosting_provider", "anonymous_vpn"],
     "connection_type": "Cellular"}
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mmdb_writer import MmdbF64, MmdbU16, MmdbU32, MMDBWriter
from netaddr import IPSet

ANONYMOUS_FLAGS = ("anonymous_vpn", "hosting_provider", "public_proxy", "residential_proxy",
                   "tor_exit_node")


@dataclass(frozen=True)
class WorldDatabases:
    """Paths of the databases built for one world (None where the world has no such facts)."""

    city: str | None
    asn: str | None
    anonymous: str | None
    connection_type: str | None


def _network(ip: str) -> IPSet:
    return IPSet([ip if "/" in ip else (f"{ip}/128" if ":" in ip else f"{ip}/32")])


def _writer(database_type: str) -> MMDBWriter:
    # An IPv6 tree with the IPv4 subtree mapped in, like MaxMind's own files.
    return MMDBWriter(ip_version=6, ipv4_compatible=True, database_type=database_type,
                      languages=["en"],
                      description={"en": f"sessionwarden test world {database_type}"})


def city_record(geo: Mapping[str, Any]) -> dict[str, Any]:
    """The GeoIP2-City record layout that ``geoip2.models.City`` reads."""
    rec: dict[str, Any] = {}
    if geo.get("country"):
        rec["country"] = {"iso_code": geo["country"], "names": {"en": geo["country"]}}
    if geo.get("city"):
        rec["city"] = {"names": {"en": geo["city"]}}
    if geo.get("lat") is not None and geo.get("lon") is not None:
        rec["location"] = {"latitude": MmdbF64(float(geo["lat"])),
                           "longitude": MmdbF64(float(geo["lon"])),
                           "accuracy_radius": MmdbU16(int(geo.get("accuracy_radius", 20)))}
    return rec


def build_world(world: Mapping[str, Mapping[str, Any]], directory: Path) -> WorldDatabases:
    """Write the databases for ``world`` into ``directory``; return their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    city, asn, anon, conn = (_writer("GeoIP2-City"), _writer("GeoLite2-ASN"),
                             _writer("GeoIP2-Anonymous-IP"), _writer("GeoIP2-Connection-Type"))
    used = {"city": False, "asn": False, "anon": False, "conn": False}
    for ip, facts in world.items():
        net = _network(ip)
        if facts.get("geo"):
            city.insert_network(net, city_record(facts["geo"]))
            used["city"] = True
        if facts.get("asn") is not None:
            rec: dict[str, Any] = {"autonomous_system_number": MmdbU32(int(facts["asn"]))}
            if facts.get("as_org"):
                rec["autonomous_system_organization"] = facts["as_org"]
            asn.insert_network(net, rec)
            used["asn"] = True
        flags = list(facts.get("anonymous") or ())
        unknown = set(flags) - set(ANONYMOUS_FLAGS)
        if unknown:
            raise ValueError(f"unknown anonymous flags for {ip}: {sorted(unknown)}")
        if flags:
            anon.insert_network(net, {"is_anonymous": True,
                                      **{f"is_{f}": True for f in flags}})
            used["anon"] = True
        if facts.get("connection_type"):
            conn.insert_network(net, {"connection_type": facts["connection_type"]})
            used["conn"] = True
    paths: dict[str, str | None] = {}
    for key, writer, name in (("city", city, "City"), ("asn", asn, "ASN"),
                              ("anon", anon, "Anonymous-IP"),
                              ("conn", conn, "Connection-Type")):
        if used[key]:
            path = directory / f"world-{name}.mmdb"
            writer.to_db_file(str(path))
            paths[key] = str(path)
        else:
            paths[key] = None
    return WorldDatabases(paths["city"], paths["asn"], paths["anon"], paths["conn"])
