"""IP -> ASN/geo enrichment with geoip2 (MaxMind-format databases) and pyasn.

Order of trust for the ASN: what the IdP supplied with the request (it saw
the connection), then the ASN database, then pyasn's offline prefix table.
Private, loopback and reserved addresses are flagged and never looked up
(pyasn's 2014 table maps some private /32s to an AS). Results are cached per
address: login traffic repeats the same addresses all day.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import geoip2.database
import geoip2.errors
import pyasn

from detectors.model import EnrichedEvent, Network, SessionEvent
from worker.settings import DecisionSettings
from worker.useragent import parse_agent

if TYPE_CHECKING:
    from worker.netclass import NetClassifier

_ANON_FLAGS = ("is_anonymous_vpn", "is_hosting_provider", "is_public_proxy",
               "is_residential_proxy", "is_tor_exit_node")
BUNDLED_DIR = Path(__file__).resolve().parent.parent / "data"
"""The test databases of a source checkout (absent from an installed package)."""
BUNDLED = {
    "city_db": BUNDLED_DIR / "mmdb" / "GeoIP2-City-Test.mmdb",
    "asn_db": BUNDLED_DIR / "mmdb" / "GeoLite2-ASN-Test.mmdb",
    "anonymous_db": BUNDLED_DIR / "mmdb" / "GeoIP2-Anonymous-IP-Test.mmdb",
    "pyasn_db": BUNDLED_DIR / "pyasn" / "ipasn_20140513.dat.gz",
}
# What each setting must hold: a word of the MaxMind database_type.
_EXPECTED_TYPE = {"city_db": ("City", "Enterprise"), "asn_db": ("ASN",),
                  "anonymous_db": ("Anonymous-IP",)}
_ENV = {name: f"SESSIONWARDEN_{name.upper()}" for name in BUNDLED}


class EnrichmentError(RuntimeError):
    """A configured database cannot be opened; the CLI exits non-zero."""


@dataclass(frozen=True, slots=True)
class DatabaseInfo:
    """One enrichment database as the start-up line and the report describe it."""

    setting: str
    path: str
    kind: str
    built: str | None
    """Build date (UTC) from the mmdb metadata, or the pyasn file's modification date."""
    test_data: bool
    """The bundled test copy: synthetic data, never for production."""

    def as_dict(self) -> dict[str, object]:
        return {"setting": self.setting, "path": self.path, "type": self.kind,
                "built": self.built, "test_data": self.test_data}


def resolve_database(setting: str, value: str | None) -> str | None:
    """The path to open for a database setting: explicit, disabled ('') or bundled.

    Unset means the bundled test database of a source checkout. An installed
    package has none, and then the user must say which database to use (or
    disable it with an empty value): it never runs on test data silently.
    """
    if value is not None:
        return value.strip() or None
    bundled = BUNDLED[setting]
    if bundled.is_file():
        return str(bundled)
    raise EnrichmentError(
        f"no database configured for {_ENV[setting]}: set it (or --{setting.replace('_', '-')})"
        " to a MaxMind-format/pyasn file, or to an empty value to run without one (the bundled"
        " test databases exist only in a source checkout)")


def _open_mmdb(setting: str, path: str | None) -> geoip2.database.Reader | None:
    if not path:
        return None
    if not Path(path).is_file():
        raise EnrichmentError(f"GeoIP database not found: {path} ({_ENV[setting]})")
    try:
        reader = geoip2.database.Reader(path)
    except Exception as exc:  # maxminddb raises several types for a bad file
        raise EnrichmentError(f"cannot open GeoIP database {path}: {exc}") from None
    kind = reader.metadata().database_type
    if not any(word in kind for word in _EXPECTED_TYPE[setting]):
        reader.close()
        raise EnrichmentError(
            f"{path} is a {kind} database, but {_ENV[setting]} needs a "
            f"{' or '.join(_EXPECTED_TYPE[setting])} database")
    return reader


def _built(reader: geoip2.database.Reader) -> str:
    epoch = reader.metadata().build_epoch
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")


class Enricher:
    """Looks up network facts for IPs and parses user agents, with caches."""

    def __init__(self, city_db: str | None, asn_db: str | None, pyasn_db: str | None,
                 anonymous_db: str | None = None, cache_size: int = 131072,
                 netclass: NetClassifier | None = None) -> None:
        self.netclass = netclass
        self._city = _open_mmdb("city_db", city_db)
        self._asn = _open_mmdb("asn_db", asn_db)
        self._anon = _open_mmdb("anonymous_db", anonymous_db)
        self._pyasn: pyasn.pyasn | None = None
        if pyasn_db:
            if not Path(pyasn_db).is_file():
                raise EnrichmentError(f"pyasn database not found: {pyasn_db} "
                                      f"({_ENV['pyasn_db']})")
            try:
                self._pyasn = pyasn.pyasn(pyasn_db)
            except Exception as exc:
                raise EnrichmentError(f"cannot open pyasn database {pyasn_db}: {exc}") from None
        self._paths = {"city_db": city_db, "asn_db": asn_db, "anonymous_db": anonymous_db,
                       "pyasn_db": pyasn_db}
        self.lookup_ip = lru_cache(maxsize=cache_size)(self._lookup_ip)
        self._with_idp_asn = lru_cache(maxsize=cache_size)(self._override_asn)

    @classmethod
    def from_settings(cls, settings: DecisionSettings) -> Enricher:
        """The enricher that replay, the worker and the benchmarks all use."""
        from worker.netclass import NetClassifier  # noqa: PLC0415 - it imports this module

        return cls(resolve_database("city_db", settings.city_db),
                   resolve_database("asn_db", settings.asn_db),
                   resolve_database("pyasn_db", settings.pyasn_db),
                   resolve_database("anonymous_db", settings.anonymous_db),
                   netclass=NetClassifier.from_settings(settings))

    def databases(self) -> list[DatabaseInfo]:
        """The databases in use, with type and build date, for the start-up line."""
        out: list[DatabaseInfo] = []
        for setting, reader in (("city_db", self._city), ("asn_db", self._asn),
                                ("anonymous_db", self._anon)):
            path = self._paths[setting]
            if reader is not None and path:
                meta = reader.metadata()
                test = _is_bundled(setting, path) or "test database" in str(
                    meta.description.get("en", "")).lower()
                out.append(DatabaseInfo(setting, path, meta.database_type, _built(reader), test))
        path = self._paths["pyasn_db"]
        if self._pyasn is not None and path:
            mtime = datetime.fromtimestamp(Path(path).stat().st_mtime, UTC).strftime("%Y-%m-%d")
            out.append(DatabaseInfo("pyasn_db", path, "pyasn IPASN", mtime,
                                    _is_bundled("pyasn_db", path)))
        return out

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
        radius: int | None = None
        if self._city is not None:
            try:
                rec = self._city.city(text)
                country, city = rec.country.iso_code, rec.city.name
                lat, lon = rec.location.latitude, rec.location.longitude
                radius = rec.location.accuracy_radius
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
        flags: tuple[str, ...] = ()
        if self._anon is not None:
            try:
                anon = self._anon.anonymous_ip(text)
                flags = tuple(f.removeprefix("is_") for f in _ANON_FLAGS
                              if getattr(anon, f, False))
            except (geoip2.errors.AddressNotFoundError, ValueError):
                pass
        return self._classified(Network(
            ip=ip, asn=asn, as_org=as_org, asn_source=source, country=country, city=city,
            latitude=lat, longitude=lon, accuracy_km=radius,
            geo_source="mmdb" if lat is not None else None,
            anonymous=tuple(f for f in flags if f != "hosting_provider"),
            hosting="hosting_provider" in flags))

    def _classified(self, net: Network) -> Network:
        """Hosting / mobile carrier / operator of the network (worker.netclass)."""
        if self.netclass is None or net.private:
            return net
        cls = self.netclass.classify_ip(net.ip, net.asn)
        if not (cls.hosting or cls.mobile or cls.operator):
            return net
        return replace(net, hosting=net.hosting or cls.hosting, mobile=cls.mobile,
                       operator=cls.operator)

    def _override_asn(self, ip: str, asn: int) -> Network:
        net = self.lookup_ip(ip)
        if net.asn == asn:
            return replace(net, asn_source="idp")
        return self._classified(replace(net, asn=asn, as_org=None, asn_source="idp",
                                        hosting="hosting_provider" in net.anonymous,
                                        mobile=False, operator=None))

    def network(self, ip: str, idp_asn: int | None) -> Network:
        return self.lookup_ip(ip) if idp_asn is None else self._with_idp_asn(ip, idp_asn)

    def enrich(self, event: SessionEvent) -> EnrichedEvent:
        """Attach network facts and the parsed user agent to an event.

        The IdP's own view of the request completes the databases': its proxy
        verdict (Okta `isProxy`) is an anonymizer flag, and its location is
        used where the City database knows none.
        """
        ua = event.user_agent
        net = self.network(event.ip, event.asn)
        if event.idp_proxy and "idp_proxy" not in net.anonymous:
            net = replace(net, anonymous=(*net.anonymous, "idp_proxy"))
        if net.latitude is None and event.idp_latitude is not None and \
                event.idp_longitude is not None and not net.private:
            net = replace(net, latitude=event.idp_latitude, longitude=event.idp_longitude,
                          country=net.country or iso_country(event.idp_country),
                          city=net.city or event.idp_city, geo_source="idp")
        elif net.country is None and event.idp_country and not net.private:
            net = replace(net, country=iso_country(event.idp_country))
        return EnrichedEvent(event, net, parse_agent(ua) if ua else None)


@lru_cache(maxsize=1024)
def iso_country(name: str | None) -> str | None:
    """An IdP's country ("Canada", "CA", "CAN") as the ISO 3166-1 alpha-2 code MaxMind uses."""
    if not name:
        return None
    import pycountry  # noqa: PLC0415 - only IdP-located requests need it

    try:
        found = pycountry.countries.lookup(name.strip())
    except LookupError:
        return name.strip()[:64]
    code: str = found.alpha_2
    return code


def _is_bundled(setting: str, path: str) -> bool:
    try:
        return Path(path).resolve() == BUNDLED[setting].resolve()
    except OSError:
        return False
