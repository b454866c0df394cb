"""Tenant policy: what each detector does and which session rules apply.

Parsed from a plain mapping (the worker reads the TOML file) by pydantic
models that forbid unknown keys and spell out every choice, so a typo such as
`mod = "persistent"` is an error naming the key, not a silent default. The
validated document becomes the frozen `Policy` the engine reads, and its
normalized content is hashed: the policy version that every decision carries,
so an auditor can tell which policy made it. Matching helpers are memoized per
policy instance.
"""

from __future__ import annotations

import difflib
import hashlib
import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

import orjson
from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
    model_validator,
)

HOUR_MS = 3_600_000

DEFAULT_REASONS = {
    "asn_binding": "Invalid network change. Login again from a trusted network",
    "ip_binding": "Invalid IP change",
    "ua_drift": "Device change detected. Login again",
    "anonymous_network": "Session used from an anonymizing network",
    "impossible_travel": "Impossible travel between two requests of the session",
}
DEFAULT_ACTIONS = {
    "asn_binding": "revoke",
    "ip_binding": "alert",
    "ua_drift": "revoke",
    "anonymous_network": "alert",
    "impossible_travel": "alert",
}
DETECTORS = tuple(DEFAULT_ACTIONS)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class PolicyError(ValueError):
    """The policy file is unusable; the CLI exits non-zero with this message."""


@dataclass(slots=True, frozen=True)
class DetectorPolicy:
    action: str
    reason: str
    preserve_refresh_tokens: bool = False
    downgrade_action: str = "alert"
    """ua_drift only: what a same-browser major-version downgrade does."""
    max_speed_kmh: float = 1000.0
    """impossible_travel only: faster than this between two requests is impossible."""
    min_distance_km: float = 500.0
    """impossible_travel only: shorter hops are within geolocation error."""


@dataclass(slots=True, frozen=True)
class Match:
    """Conditions of a rule; a rule matches when any listed condition holds."""

    groups: frozenset[str] = frozenset()
    connections: frozenset[str] = frozenset()
    organizations: frozenset[str] = frozenset()
    clients: frozenset[str] = frozenset()
    cidrs: tuple[Network, ...] = ()
    asns: frozenset[int] = frozenset()


@dataclass(slots=True, frozen=True)
class ExpiryRule:
    name: str
    match: Match
    absolute_timeout_ms: int | None = None
    idle_timeout_ms: int | None = None


@dataclass(slots=True, frozen=True)
class CookieRule:
    name: str
    match: Match
    mode: str


@dataclass(slots=True, frozen=True)
class Policy:
    absolute_lifetime_ms: int
    idle_lifetime_ms: int
    detectors: Mapping[str, DetectorPolicy]
    allow_cidrs: tuple[Network, ...]
    allow_asns: frozenset[int]
    expiry_rules: tuple[ExpiryRule, ...]
    cookie_rules: tuple[CookieRule, ...]
    version: str
    _memo: dict[str, bool] = field(default_factory=dict, compare=False, repr=False)

    def detector(self, name: str) -> DetectorPolicy:
        return self.detectors[name]

    def ip_in(self, ip: str, cidrs: tuple[Network, ...]) -> bool:
        """Whether an IP lies in one of the networks; memoized per (list, ip)."""
        if not cidrs:
            return False
        key = f"{id(cidrs)}|{ip}"
        hit = self._memo.get(key)
        if hit is None:
            addr = ipaddress.ip_address(ip)
            hit = any(addr.version == net.version and addr in net for net in cidrs)
            if len(self._memo) > 200_000:
                self._memo.clear()
            self._memo[key] = hit
        return hit

    def allowed(self, ip: str, asn: int | None) -> bool:
        """Trusted networks (e.g. corporate egress) never trip network detectors."""
        return (asn is not None and asn in self.allow_asns) or self.ip_in(ip, self.allow_cidrs)


# --- The policy file schema (pydantic): every key is known, every choice a Literal.

Action = Literal["revoke", "alert", "off"]
CookieMode = Literal["persistent", "non-persistent"]


def _positive(value: float) -> float:
    if not value > 0 or value == float("inf"):
        raise ValueError("must be a positive number")
    return value


def _asn(value: object) -> int:
    """An AS number as people write it: 64500, "64500", "AS64500"."""
    text = str(value).strip().upper().removeprefix("AS")
    if isinstance(value, bool) or not (text.isascii() and text.isdigit()):
        raise ValueError(f"not an AS number: {value!r}")
    n = int(text)
    if not 0 < n < 2**32:
        raise ValueError(f"AS number out of range: {value!r}")
    return n


def _network(value: object) -> Network:
    if not isinstance(value, str):
        raise ValueError(f"not a CIDR string: {value!r}")
    try:
        return ipaddress.ip_network(value.strip(), strict=False)
    except ValueError as exc:
        raise ValueError(str(exc)) from None


PositiveNumber = Annotated[StrictInt | StrictFloat, AfterValidator(_positive)]
PositiveMs = Annotated[StrictInt, Field(gt=0)]
Asn = Annotated[int, BeforeValidator(_asn)]
Cidr = Annotated[Network, BeforeValidator(_network)]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TenantSection(_Section):
    absolute_lifetime_hours: PositiveNumber = 168
    idle_lifetime_hours: PositiveNumber = 72


class DetectorSection(_Section):
    action: Action | None = None
    reason: StrictStr | None = None
    preserve_refresh_tokens: StrictBool = False


class UaDriftSection(DetectorSection):
    downgrade_action: Action = "alert"


class TravelSection(DetectorSection):
    max_speed_kmh: PositiveNumber = 1000.0
    min_distance_km: PositiveNumber = 500.0


class DetectorsSection(_Section):
    asn_binding: DetectorSection = DetectorSection()
    ip_binding: DetectorSection = DetectorSection()
    ua_drift: UaDriftSection = UaDriftSection()
    anonymous_network: DetectorSection = DetectorSection()
    impossible_travel: TravelSection = TravelSection()


class MatchSection(_Section):
    groups: list[StrictStr] = []
    connections: list[StrictStr] = []
    organizations: list[StrictStr] = []
    clients: list[StrictStr] = []
    cidrs: list[Cidr] = []
    asns: list[Asn] = []

    @model_validator(mode="after")
    def _has_a_condition(self) -> MatchSection:
        if not any((self.groups, self.connections, self.organizations, self.clients,
                    self.cidrs, self.asns)):
            raise ValueError("has no conditions (groups, connections, organizations, "
                             "clients, cidrs or asns)")
        return self


class ExpiryRuleSection(_Section):
    name: StrictStr | None = None
    match: MatchSection
    absolute_timeout_ms: PositiveMs | None = None
    idle_timeout_ms: PositiveMs | None = None

    @model_validator(mode="after")
    def _sets_something(self) -> ExpiryRuleSection:
        if self.absolute_timeout_ms is None and self.idle_timeout_ms is None:
            raise ValueError("sets neither absolute_timeout_ms nor idle_timeout_ms")
        return self


class CookieRuleSection(_Section):
    name: StrictStr | None = None
    match: MatchSection
    mode: CookieMode = "non-persistent"


class AllowSection(_Section):
    cidrs: list[Cidr] = []
    asns: list[Asn] = []


class PolicyDocument(_Section):
    """The whole policy file. `enforcement` belongs to the enforcer (validated there)."""

    tenant: TenantSection = TenantSection()
    detectors: DetectorsSection = DetectorsSection()
    allow: AllowSection = AllowSection()
    expiry_rules: list[ExpiryRuleSection] = []
    cookie_rules: list[CookieRuleSection] = []
    enforcement: dict[str, Any] | None = None


def _where(loc: tuple[int | str, ...], raw: Mapping[str, Any]) -> str:
    """A validation error location as the TOML author wrote it: detectors.ua_drift.action."""
    parts: list[str] = []
    node: Any = raw
    for item in loc:
        if isinstance(item, int):
            name = node[item].get("name") if isinstance(node, list) and item < len(node) \
                and isinstance(node[item], Mapping) else None
            parts[-1:] = [f"{parts[-1] if parts else ''}[{item}]"
                          + (f" ({name})" if isinstance(name, str) else "")]
        else:
            parts.append(item)
        try:
            node = node[item]
        except (KeyError, IndexError, TypeError):
            node = None
    return ".".join(parts)


def _known_keys(loc: tuple[int | str, ...]) -> list[str]:
    """The keys allowed where an unknown key was found (for a did-you-mean hint)."""
    model: Any = PolicyDocument
    for item in loc[:-1]:
        if isinstance(item, int):
            continue
        field_info = model.model_fields.get(item) if hasattr(model, "model_fields") else None
        if field_info is None:
            return []
        annotation = field_info.annotation
        args = getattr(annotation, "__args__", ())
        candidates = [annotation, *args]
        model = next((c for c in candidates if isinstance(c, type)
                      and issubclass(c, BaseModel)), None)
        if model is None:
            return []
    return list(model.model_fields)


def _errors(exc: ValidationError, raw: Mapping[str, Any]) -> str:
    lines = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        where = _where(loc, raw) or "(top level)"
        if err["type"] == "extra_forbidden":
            hint = difflib.get_close_matches(str(loc[-1]), _known_keys(loc), n=1)
            lines.append(f"{where}: unknown key" + (f" (did you mean {hint[0]!r}?)"
                                                    if hint else ""))
        elif err["type"] == "literal_error":
            lines.append(f"{where}: must be {err['ctx']['expected']}, "
                         f"got {err.get('input')!r}")
        else:
            msg = str(err["msg"]).removeprefix("Value error, ")
            lines.append(f"{where}: {msg}")
    return "; ".join(lines)


def _match(m: MatchSection) -> Match:
    return Match(groups=frozenset(m.groups), connections=frozenset(m.connections),
                 organizations=frozenset(m.organizations), clients=frozenset(m.clients),
                 cidrs=tuple(m.cidrs), asns=frozenset(m.asns))


def _detector(name: str, section: DetectorSection) -> DetectorPolicy:
    return DetectorPolicy(
        action=section.action or DEFAULT_ACTIONS[name],
        reason=section.reason if section.reason is not None else DEFAULT_REASONS[name],
        preserve_refresh_tokens=section.preserve_refresh_tokens,
        downgrade_action=getattr(section, "downgrade_action", "alert"),
        max_speed_kmh=float(getattr(section, "max_speed_kmh", 1000.0)),
        min_distance_km=float(getattr(section, "min_distance_km", 500.0)),
    )


def parse_policy_document(raw: Mapping[str, Any]) -> PolicyDocument:
    """Validate a policy mapping; PolicyError names every bad key (and a likely fix)."""
    try:
        return PolicyDocument.model_validate(raw)
    except ValidationError as exc:
        raise PolicyError(_errors(exc, raw)) from None


def policy_from_mapping(raw: Mapping[str, Any]) -> Policy:
    """Build a validated Policy; missing sections take the documented defaults."""
    doc = parse_policy_document(raw)
    detectors = {name: _detector(name, getattr(doc.detectors, name)) for name in DETECTORS}
    expiry = tuple(ExpiryRule(r.name or f"expiry_rules[{i}]", _match(r.match),
                              r.absolute_timeout_ms, r.idle_timeout_ms)
                   for i, r in enumerate(doc.expiry_rules))
    cookies = tuple(CookieRule(r.name or f"cookie_rules[{i}]", _match(r.match), r.mode)
                    for i, r in enumerate(doc.cookie_rules))
    absolute_ms = int(doc.tenant.absolute_lifetime_hours * HOUR_MS)
    idle_ms = int(doc.tenant.idle_lifetime_hours * HOUR_MS)
    allow_cidrs = tuple(doc.allow.cidrs)
    allow_asns = frozenset(doc.allow.asns)
    policy_content: dict[str, Any] = {
        "tenant": {"absolute_lifetime_ms": absolute_ms, "idle_lifetime_ms": idle_ms},
        "detectors": {k: [v.action, v.reason, v.preserve_refresh_tokens, v.downgrade_action,
                          v.max_speed_kmh, v.min_distance_km]
                      for k, v in detectors.items()},
        "allow": [sorted(map(str, allow_cidrs)), sorted(allow_asns)],
        "expiry_rules": [[*_rule_repr(r.name, r.match), r.absolute_timeout_ms, r.idle_timeout_ms]
                         for r in expiry],
        "cookie_rules": [[*_rule_repr(r.name, r.match), r.mode] for r in cookies],
    }
    digest = hashlib.sha256(orjson.dumps(policy_content, option=orjson.OPT_SORT_KEYS))
    return Policy(
        absolute_lifetime_ms=absolute_ms,
        idle_lifetime_ms=idle_ms,
        detectors=detectors,
        allow_cidrs=allow_cidrs,
        allow_asns=allow_asns,
        expiry_rules=expiry,
        cookie_rules=cookies,
        version="sha256:" + digest.hexdigest()[:16],
    )


def _rule_repr(name: str, m: Match) -> list[Any]:
    return [name, sorted(m.groups), sorted(m.connections), sorted(m.organizations),
            sorted(m.clients), sorted(map(str, m.cidrs)), sorted(m.asns)]


DEFAULT_POLICY = policy_from_mapping({})
