"""Network classification: is an ASN a hosting network, a mobile carrier, whose?

The decision rules need to tell a hosting/cloud origin (a stolen cookie
replayed from a VPS) from a network users roam to (their phone leaving Wi-Fi
for the carrier, often a second ASN of the same operator). That knowledge is
data, not code, so it ships as small versioned files in ``data/netclass/``
(provenance and licences beside them, rebuilt by
``scripts/refresh_netclass.py``), optionally completed by the MaxMind
GeoIP2-ISP (``mobile_country_code``/``mobile_network_code``) and
GeoIP2-Connection-Type (``Cellular``) databases that production users may have.

Lookups are dict hits behind an LRU cache; everything is loaded once at start
and a missing or corrupt file is a :class:`NetClassError` (an
:class:`~worker.enrich.EnrichmentError`, so the CLI exits 2 with one line).
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import geoip2.database
import geoip2.errors
import orjson

from worker.enrich import BUNDLED_DIR as DATA_DIR
from worker.enrich import EnrichmentError
from worker.settings import DecisionSettings

BUNDLED_DIR = DATA_DIR / "netclass"
HOSTING_FILE = "hosting_asns.csv"
MOBILE_FILE = "mobile_asns.csv"
MANIFEST_FILE = "manifest.json"
OVERRIDES_FILE = "overrides.csv"
"""Optional, in the same directory: a user's own ``asn,hosting,mobile,operator`` rows."""

ROLES = ("mobile", "fixed", "core")
_TRUE = {"1", "true", "yes", "y"}
_FALSE = {"0", "false", "no", "n", ""}


class NetClassError(EnrichmentError):
    """The classification data cannot be loaded; the CLI exits 2 with this message."""


@dataclass(frozen=True, slots=True)
class AsnClass:
    """What is known about one network; ``sources`` names every source that said so."""

    hosting: bool = False
    mobile: bool = False
    operator: str | None = None
    sources: tuple[str, ...] = ()


UNKNOWN = AsnClass()


@dataclass(frozen=True, slots=True)
class IspRecord:
    """The fields of a MaxMind GeoIP2-ISP / Connection-Type record that classify a network.

    ``mobile_country_code``/``mobile_network_code`` (MCC/MNC) are only set by
    MaxMind for mobile carriers; ``connection_type`` is ``Cellular`` for them.
    """

    asn: int | None = None
    isp: str | None = None
    organization: str | None = None
    mobile_country_code: str | None = None
    mobile_network_code: str | None = None
    connection_type: str | None = None

    @property
    def is_mobile(self) -> bool:
        return bool(self.mobile_country_code) or self.connection_type == "Cellular"

    @property
    def operator(self) -> str | None:
        """An operator key from the record: MCC-MNC identifies one mobile network."""
        if self.mobile_country_code and self.mobile_network_code:
            return f"mccmnc:{self.mobile_country_code}-{self.mobile_network_code}"
        return None


@dataclass(frozen=True, slots=True)
class _Carrier:
    operator: str
    role: str
    sources: tuple[str, ...]


def _read_csv(path: Path, header: list[str]) -> list[dict[str, str]]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise NetClassError(f"cannot read network classification file {path}: "
                            f"{exc.strerror or exc}") from exc
    except UnicodeDecodeError as exc:
        raise NetClassError(f"network classification file {path} is not UTF-8 text") from exc
    reader = csv.DictReader(io.StringIO(text))
    if reader.fieldnames is None or list(reader.fieldnames)[:len(header)] != header:
        raise NetClassError(f"network classification file {path}: expected columns "
                            f"{','.join(header)}, got {','.join(reader.fieldnames or [])}")
    return list(reader)


def _asn(value: str | None, path: Path, line: int) -> int:
    text = (value or "").strip().upper().removeprefix("AS")
    if not text.isdigit() or not 0 < int(text) < 2**32:
        raise NetClassError(f"{path}:{line}: not an AS number: {value!r}")
    return int(text)


def _flag(value: str | None, path: Path, line: int, column: str) -> bool:
    text = (value or "").strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise NetClassError(f"{path}:{line}: column {column} must be true or false, got {value!r}")


def _open_mmdb(path: str | None, kind: str) -> geoip2.database.Reader | None:
    if not path:
        return None
    if not Path(path).is_file():
        raise NetClassError(f"GeoIP2 {kind} database not found: {path}")
    try:
        reader = geoip2.database.Reader(path)
    except Exception as exc:  # maxminddb raises several types for a bad file
        raise NetClassError(f"cannot open GeoIP2 {kind} database {path}: {exc}") from None
    found = reader.metadata().database_type
    if kind not in found:  # e.g. a City file given as the ISP database
        reader.close()
        raise NetClassError(f"{path} is a {found} database, not a GeoIP2 {kind} database")
    return reader


class NetClassifier:
    """Hosting / mobile / operator facts per ASN, plus per-IP facts from MaxMind ISP data."""

    def __init__(self, hosting: dict[int, tuple[str, ...]], carriers: dict[int, _Carrier],
                 version: str, isp_db: str | None = None,
                 connection_type_db: str | None = None, cache_size: int = 65536) -> None:
        self._hosting = hosting
        self._carriers = carriers
        self.version = version
        """Data version for the start-up log and decisions (changes with the content)."""
        self._isp = _open_mmdb(isp_db, "ISP")
        self._conn = _open_mmdb(connection_type_db, "Connection-Type")
        self.classify = lru_cache(maxsize=cache_size)(self._classify)
        self.isp_record = lru_cache(maxsize=cache_size)(self._isp_record)

    # ---- construction -------------------------------------------------------

    @classmethod
    def from_dir(cls, directory: Path | str | None = None, isp_db: str | None = None,
                 connection_type_db: str | None = None) -> NetClassifier:
        """Load the lists from ``directory`` (default: the bundled ``data/netclass``).

        ``overrides.csv`` there, if present, is applied last: a user marks their
        own carriers or VPN exits without editing the refreshed files.
        """
        d = Path(directory) if directory is not None else BUNDLED_DIR
        if not d.is_dir():
            raise NetClassError(f"network classification directory not found: {d} (set "
                                f"SESSIONWARDEN_NETCLASS_DIR to a copy of data/netclass)")
        hosting: dict[int, tuple[str, ...]] = {}
        for n, row in enumerate(_read_csv(d / HOSTING_FILE, ["asn", "name", "sources"]), 2):
            asn = _asn(row["asn"], d / HOSTING_FILE, n)
            hosting[asn] = tuple(s for s in (row["sources"] or "").split(";") if s) or ("list",)
        carriers: dict[int, _Carrier] = {}
        header = ["asn", "operator", "role", "country", "sources"]
        for n, row in enumerate(_read_csv(d / MOBILE_FILE, header), 2):
            asn = _asn(row["asn"], d / MOBILE_FILE, n)
            role = (row["role"] or "").strip()
            if role not in ROLES:
                raise NetClassError(f"{d / MOBILE_FILE}:{n}: role must be one of "
                                    f"{'|'.join(ROLES)}, got {role!r}")
            operator = (row["operator"] or "").strip()
            if not operator:
                raise NetClassError(f"{d / MOBILE_FILE}:{n}: empty operator")
            carriers[asn] = _Carrier(operator, role, tuple(
                s for s in (row["sources"] or "").split(";") if s) or ("list",))
        version = cls._version(d)
        overrides = d / OVERRIDES_FILE
        if overrides.is_file():
            cls._apply_overrides(overrides, hosting, carriers)
            digest = hashlib.sha256(overrides.read_bytes()).hexdigest()[:8]
            version = f"{version}+overrides-{digest}"
        return cls(hosting, carriers, version, isp_db, connection_type_db)

    @classmethod
    def from_settings(cls, settings: DecisionSettings) -> NetClassifier:
        """The classifier replay, the worker and the benchmarks share."""
        return cls.from_dir(settings.netclass_dir, settings.isp_db or None,
                            settings.connection_type_db or None)

    @staticmethod
    def _version(d: Path) -> str:
        path = d / MANIFEST_FILE
        try:
            manifest: Any = orjson.loads(path.read_bytes())
        except OSError as exc:
            raise NetClassError(f"cannot read network classification manifest {path}: "
                                f"{exc.strerror or exc}") from exc
        except orjson.JSONDecodeError as exc:
            raise NetClassError(f"network classification manifest {path} is not JSON: "
                                f"{exc}") from exc
        version = manifest.get("version") if isinstance(manifest, dict) else None
        if not isinstance(version, str) or not version:
            raise NetClassError(f"network classification manifest {path} has no version")
        files = manifest.get("files")
        if isinstance(files, dict):  # a hand-edited list must not pass as the released one
            for name, want in files.items():
                got = hashlib.sha256((d / name).read_bytes()).hexdigest()
                if got != want:
                    raise NetClassError(
                        f"{d / name} does not match its manifest (sha256 {got[:12]}, expected "
                        f"{str(want)[:12]}): re-run scripts/refresh_netclass.py or put local "
                        f"changes in {OVERRIDES_FILE}")
        return version

    @staticmethod
    def _apply_overrides(path: Path, hosting: dict[int, tuple[str, ...]],
                         carriers: dict[int, _Carrier]) -> None:
        for n, row in enumerate(_read_csv(path, ["asn", "hosting", "mobile", "operator"]), 2):
            asn = _asn(row["asn"], path, n)
            if _flag(row["hosting"], path, n, "hosting"):
                hosting[asn] = ("override",)
            else:
                hosting.pop(asn, None)
            mobile = _flag(row["mobile"], path, n, "mobile")
            operator = (row["operator"] or "").strip()
            if mobile or operator:
                carriers[asn] = _Carrier(operator or f"as:{asn}",
                                         "mobile" if mobile else "fixed", ("override",))
            else:
                carriers.pop(asn, None)

    def close(self) -> None:
        for reader in (self._isp, self._conn):
            if reader is not None:
                reader.close()

    # ---- lookups ------------------------------------------------------------

    @property
    def reads_isp_data(self) -> bool:
        """Whether a GeoIP2 ISP or Connection-Type database is configured."""
        return self._isp is not None or self._conn is not None

    def _classify(self, asn: int | None, isp_record: IspRecord | None = None) -> AsnClass:
        """Classify a network by ASN, completed by an ISP record when one is given."""
        sources: list[str] = []
        hosting = False
        mobile = False
        operator: str | None = None
        if isp_record is not None and asn is None:
            asn = isp_record.asn
        if asn is not None:
            h = self._hosting.get(asn)
            if h is not None:
                hosting = True
                sources.extend(h)
            c = self._carriers.get(asn)
            if c is not None:
                operator = c.operator
                mobile = c.role == "mobile"
                sources.extend(s for s in c.sources if s not in sources)
        if isp_record is not None and isp_record.is_mobile:
            mobile = True
            operator = operator or isp_record.operator
            sources.append("maxmind-isp" if isp_record.mobile_country_code
                           else "maxmind-connection-type")
        if not sources:
            return UNKNOWN
        return AsnClass(hosting, mobile, operator, tuple(sources))

    def _isp_record(self, ip: str) -> IspRecord | None:
        """The ISP / Connection-Type facts of one address (None when no db knows it)."""
        if not self.reads_isp_data:
            return None
        try:
            addr = ipaddress.ip_address(ip)
        except ValueError:
            return None
        if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
            addr = addr.ipv4_mapped
        if not addr.is_global:
            return None
        text = str(addr)
        fields: dict[str, Any] = {}
        if self._isp is not None:
            try:
                rec = self._isp.isp(text)
                fields.update(asn=rec.autonomous_system_number, isp=rec.isp,
                              organization=rec.organization,
                              mobile_country_code=rec.mobile_country_code,
                              mobile_network_code=rec.mobile_network_code)
            except (geoip2.errors.AddressNotFoundError, ValueError):
                pass
        if self._conn is not None:
            with contextlib.suppress(geoip2.errors.AddressNotFoundError, ValueError):
                fields["connection_type"] = self._conn.connection_type(text).connection_type
        return IspRecord(**fields) if fields else None

    def classify_ip(self, ip: str, asn: int | None) -> AsnClass:
        """Classify the network of an address: its ASN plus the ISP databases' view of it."""
        return self.classify(asn, self.isp_record(ip))

    def same_operator(self, a: int | None, b: int | None) -> bool:
        """Whether two ASNs belong to one operator (e.g. a carrier's fixed and mobile ASNs)."""
        if a is None or b is None:
            return False
        if a == b:
            return True
        ca, cb = self._carriers.get(a), self._carriers.get(b)
        return ca is not None and cb is not None and ca.operator == cb.operator

    def operator_asns(self, operator: str) -> tuple[int, ...]:
        """Every listed ASN of one operator, sorted (for docs and explanations)."""
        return tuple(sorted(a for a, c in self._carriers.items() if c.operator == operator))

    def counts(self) -> dict[str, int]:
        """Coverage numbers for the start-up log."""
        return {"hosting_asns": len(self._hosting),
                "carrier_asns": len(self._carriers),
                "mobile_asns": sum(c.role == "mobile" for c in self._carriers.values()),
                "operators": len({c.operator for c in self._carriers.values()})}
