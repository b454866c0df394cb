"""IP -> ASN/geo enrichment with geoip2 (MaxMind-format databases) and pyasn.

Order of trust for the ASN: what the IdP supplied with the request (it saw
the connection), then the ASN database, then pyasn's offline prefix table.
Private, loopback and reserved addresses are flagged and never looked up
(pyasn's 2014 table maps some private /32s to an AS). Results are cached per
address: login traffic repeats the same addresses all day.
"""

from __future__ import annotations

import ipaddress
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import geoip2.database
import geoip2.errors
import pyasn

from detectors.model import EnrichedEvent, Network, SessionEvent
from worker.settings import Settings
from worker.useragent import parse_agent

_ANON_FLAGS = ("is_anonymous_vpn", "is_hosting_provider", "is_public_proxy",
               "is_residential_proxy", "is_tor_exit_node")


class EnrichmentError(RuntimeError):
    """A configured database cannot be opened; the CLI exits non-zero."""


def _open_mmdb(path: str | None) -> geoip2.database.Reader | None:
    if not path:
        return None
    if not Path(path).is_file():
        raise EnrichmentError(f"GeoIP database not found: {path}")
    try:
        return geoip2.database.Reader(path)
    except Exception as exc:  # maxminddb raises several types for a bad file
        raise EnrichmentError(f"cannot open GeoIP database {path}: {exc}") from exc


class Enricher:
    """Looks up network facts for IPs and parses user agents, with caches."""

    def __init__(self, city_db: str | None, asn_db: str | None, pyasn_db: str | None,
                 anonymous_db: str | None = None, cache_size: int = 131072) -> None:
        self._city = _open_mmdb(city_db)
        self._asn = _open_mmdb(asn_db)
        self._anon = _open_mmdb(anonymous_db)
        self._pyasn: pyasn.pyasn | None = None
        if pyasn_db:
            if not Path(pyasn_db).is_file():
                raise EnrichmentError(f"pyasn database not found: {pyasn_db}")
            try:
                self._pyasn = pyasn.pyasn(pyasn_db)
            except Exception as exc:
                raise EnrichmentError(f"cannot open pyasn database {pyasn_db}: {exc}") from exc
        self.lookup_ip = lru_cache(maxsize=cache_size)(self._lookup_ip)
        self._with_idp_asn = lru_cache(maxsize=cache_size)(self._override_asn)

    @classmethod
    def from_settings(cls, settings: Settings) -> Enricher:
        """The enricher that replay, the worker and the benchmarks all use."""
        return cls(settings.city_db or None, settings.asn_db or None,
                   settings.pyasn_db or None, settings.anonymous_db or None)

    def close(self) -> None:
        for reader in (self._city, self._asn, self._anon):
            if reader is not None:
                reader.close()

    def _lookup_ip(self, ip: str) -> Network:
        addr = ipaddress.ip_address(ip)
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if not addr.is_global:
            return Network(ip=ip, private=True)
        text = str(addr)
        country = city = None
        lat = lon = None
        if self._city is not None:
            try:
                rec = self._city.city(text)
                country, city = rec.country.iso_code, rec.city.name
                lat, lon = rec.location.latitude, rec.location.longitude
            except (geoip2.errors.AddressNotFoundError, ValueError):
                pass
        asn: int | None = None
        as_org: str | None = None
        source: str | None = None
        if self._asn is not None:
            try:
                arec = self._asn.asn(text)
                asn, as_org = arec.autonomous_system_number, arec.autonomous_system_organization
                source = "mmdb" if asn is not None else None
            except (geoip2.errors.AddressNotFoundError, ValueError):
                pass
        if asn is None and self._pyasn is not None and addr.version == 4:
            try:
                found, _prefix = self._pyasn.lookup(text)
            except ValueError:
                found = None
            if found is not None:
                asn, source = int(found), "pyasn"
        anonymous: tuple[str, ...] = ()
        if self._anon is not None:
            try:
                anon = self._anon.anonymous_ip(text)
                anonymous = tuple(f.removeprefix("is_") for f in _ANON_FLAGS
                                  if getattr(anon, f, False))
            except (geoip2.errors.AddressNotFoundError, ValueError):
                pass
        return Network(ip=ip, asn=asn, as_org=as_org, asn_source=source, country=country,
                       city=city, latitude=lat, longitude=lon, anonymous=anonymous)

    def _override_asn(self, ip: str, asn: int) -> Network:
        net = self.lookup_ip(ip)
        if net.asn == asn:
            return replace(net, asn_source="idp")
        return replace(net, asn=asn, as_org=None, asn_source="idp")

    def network(self, ip: str, idp_asn: int | None) -> Network:
        return self.lookup_ip(ip) if idp_asn is None else self._with_idp_asn(ip, idp_asn)

    def enrich(self, event: SessionEvent) -> EnrichedEvent:
        """Attach network facts and the parsed user agent to an event."""
        ua = event.user_agent
        return EnrichedEvent(event, self.network(event.ip, event.asn),
                             parse_agent(ua) if ua else None)
