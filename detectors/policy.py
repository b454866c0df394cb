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
    "hosting_network": "Session used from a hosting or cloud network",
    "impossible_travel": "Impossible travel between two requests of the session",
    "automation_client": "Session used by an automation client instead of a browser",
    "device_token_change": "The session's device changed (IdP device token)",
    "idp_risk": "The identity provider rated the request as high risk",
}
DEFAULT_ACTIONS = {
    "asn_binding": "step_up",
    "ip_binding": "off",
    "ua_drift": "revoke",
    "anonymous_network": "revoke",
    "hosting_network": "revoke",
    "impossible_travel": "revoke",
    "automation_client": "revoke",
    "device_token_change": "revoke",
    "idp_risk": "alert",
}
DETECTORS = tuple(DEFAULT_ACTIONS)
NETWORK_KINDS = {
    # What a move to a network outside the session's own networks does, by
    # what the network is to this user (docs/engine.md, "Network changes").
    "known_network": "off",
    "same_operator": "step_up",
    "mobile_network": "step_up",
    "new_network": "step_up",
    "new_country": "step_up",
    "unknown_network": "step_up",
}
"""Default action per kind of network change (asn_binding); `action` sets `new_network`."""
STRENGTH = ("device_token_change", "automation_client", "ua_drift", "impossible_travel",
            "anonymous_network", "hosting_network", "asn_binding", "idp_risk", "ip_binding")
"""Detectors from the strongest evidence of a hijack to the weakest: a decision's reason
is the strongest finding's."""

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
    kinds: Mapping[str, str] = field(default_factory=dict)
    """asn_binding only: the action per kind of network change (NETWORK_KINDS)."""

    def action_for(self, kind: str) -> str:
        return self.kinds.get(kind, self.action)


@dataclass(slots=True, frozen=True)
class ProfilePolicy:
    """Bounds of the per-user profile (docs/engine.md, "Per-user profiles")."""

    ttl_ms: int = 90 * 24 * HOUR_MS
    min_sessions: int = 1
    """Earlier sessions (of this user, other than the current one) that make a network known."""
    max_networks: int = 24
    max_prefixes: int = 48
    max_countries: int = 12
    max_agents: int = 8


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
    profile: ProfilePolicy = ProfilePolicy()
    min_idle_extension_ms: int = 600_000
    """An idle expiry is re-issued only when it moves the deadline by at least this much
    (capped at a quarter of the idle timeout); 0 re-issues on every interaction."""
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

Action = Literal["revoke", "step_up", "alert", "off"]
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
    min_idle_extension_ms: Annotated[StrictInt, Field(ge=0)] = 600_000


class DetectorSection(_Section):
    action: Action | None = None
    reason: Annotated[StrictStr, Field(max_length=1000)] | None = None
    preserve_refresh_tokens: StrictBool = False


class UaDriftSection(DetectorSection):
    downgrade_action: Action = "alert"


class TravelSection(DetectorSection):
    max_speed_kmh: PositiveNumber = 1000.0
    min_distance_km: PositiveNumber = 500.0


class NetworkChangeSection(DetectorSection):
    """asn_binding: `action` is what a move to a new network does; each kind can differ."""

    known_network: Action | None = None
    same_operator: Action | None = None
    mobile_network: Action | None = None
    new_country: Action | None = None
    unknown_network: Action | None = None


class DetectorsSection(_Section):
    asn_binding: NetworkChangeSection = NetworkChangeSection()
    ip_binding: DetectorSection = DetectorSection()
    ua_drift: UaDriftSection = UaDriftSection()
    anonymous_network: DetectorSection = DetectorSection()
    hosting_network: DetectorSection = DetectorSection()
    impossible_travel: TravelSection = TravelSection()
    automation_client: DetectorSection = DetectorSection()
    device_token_change: DetectorSection = DetectorSection()
    idp_risk: DetectorSection = DetectorSection()


class ProfileSection(_Section):
    ttl_days: PositiveNumber = 90
    min_sessions: Annotated[StrictInt, Field(ge=1)] = 1
    max_networks: Annotated[StrictInt, Field(ge=1, le=1000)] = 24
    max_prefixes: Annotated[StrictInt, Field(ge=1, le=1000)] = 48
    max_countries: Annotated[StrictInt, Field(ge=1, le=300)] = 12
    max_agents: Annotated[StrictInt, Field(ge=1, le=100)] = 8


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
    profile: ProfileSection = ProfileSection()
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
    action = section.action or DEFAULT_ACTIONS[name]
    kinds: dict[str, str] = {}
    if isinstance(section, NetworkChangeSection):
        for kind, default in NETWORK_KINDS.items():
            chosen = getattr(section, kind, None) if kind != "new_network" else None
            # `action` moves the kinds that follow the default along with it.
            kinds[kind] = chosen or (action if default == DEFAULT_ACTIONS[name]
                                     and section.action else default)
        kinds["new_network"] = action
    return DetectorPolicy(
        action=action,
        reason=section.reason if section.reason is not None else DEFAULT_REASONS[name],
        preserve_refresh_tokens=section.preserve_refresh_tokens,
        downgrade_action=getattr(section, "downgrade_action", "alert"),
        max_speed_kmh=float(getattr(section, "max_speed_kmh", 1000.0)),
        min_distance_km=float(getattr(section, "min_distance_km", 500.0)),
        kinds=kinds,
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
    p = doc.profile
    profile = ProfilePolicy(int(p.ttl_days * 24 * HOUR_MS), p.min_sessions, p.max_networks,
                            p.max_prefixes, p.max_countries, p.max_agents)
    policy_content: dict[str, Any] = {
        "tenant": {"absolute_lifetime_ms": absolute_ms, "idle_lifetime_ms": idle_ms,
                   "min_idle_extension_ms": doc.tenant.min_idle_extension_ms},
        "detectors": {k: [v.action, v.reason, v.preserve_refresh_tokens, v.downgrade_action,
                          v.max_speed_kmh, v.min_distance_km, sorted(v.kinds.items())]
                      for k, v in detectors.items()},
        "profile": [profile.ttl_ms, profile.min_sessions, profile.max_networks,
                    profile.max_prefixes, profile.max_countries, profile.max_agents],
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
        profile=profile,
        min_idle_extension_ms=doc.tenant.min_idle_extension_ms,
    )


def _rule_repr(name: str, m: Match) -> list[Any]:
    return [name, sorted(m.groups), sorted(m.connections), sorted(m.organizations),
            sorted(m.clients), sorted(map(str, m.cidrs)), sorted(m.asns)]


DEFAULT_POLICY = policy_from_mapping({})
