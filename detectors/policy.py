"""Tenant policy: what each detector does and which session rules apply.

Parsed from a plain mapping (the worker reads the TOML file), validated with
precise errors, and hashed: the hash of the normalized content is the policy
version that every decision carries, so an auditor can tell which policy made
it. Matching helpers are memoized per policy instance.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

HOUR_MS = 3_600_000
ACTIONS = ("revoke", "alert", "off")
COOKIE_MODES = ("persistent", "non-persistent")

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


def _hours(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
        raise PolicyError(f"{name} must be a positive number of hours, got {value!r}")
    return int(value * HOUR_MS)


def _ms(value: object, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise PolicyError(f"{name} must be a positive integer of milliseconds, got {value!r}")
    return value


def _strings(value: object, name: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise PolicyError(f"{name} must be a list of strings")
    return frozenset(value)


def _cidrs(value: object, name: str) -> tuple[Network, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise PolicyError(f"{name} must be a list of CIDR strings")
    try:
        return tuple(ipaddress.ip_network(str(v), strict=False) for v in value)
    except ValueError as exc:
        raise PolicyError(f"{name}: {exc}") from None


def _asns(value: object, name: str) -> frozenset[int]:
    if value is None:
        return frozenset()
    if not isinstance(value, list):
        raise PolicyError(f"{name} must be a list of AS numbers")
    out: set[int] = set()
    for v in value:
        text = str(v).upper().removeprefix("AS")
        if not (text.isascii() and text.isdigit()):
            raise PolicyError(f"{name}: not an AS number: {v!r}")
        out.add(int(text))
    return frozenset(out)


def _match(raw: Mapping[str, Any], name: str) -> Match:
    match = Match(
        groups=_strings(raw.get("groups"), f"{name}.groups"),
        connections=_strings(raw.get("connections"), f"{name}.connections"),
        organizations=_strings(raw.get("organizations"), f"{name}.organizations"),
        clients=_strings(raw.get("clients"), f"{name}.clients"),
        cidrs=_cidrs(raw.get("cidrs"), f"{name}.cidrs"),
        asns=_asns(raw.get("asns"), f"{name}.asns"),
    )
    if not any((match.groups, match.connections, match.organizations, match.clients,
                match.cidrs, match.asns)):
        raise PolicyError(f"{name} has no conditions (groups, connections, organizations, "
                          "clients, cidrs or asns)")
    return match


def _table(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key, {})
    if not isinstance(value, Mapping):
        raise PolicyError(f"[{key}] must be a table")
    return value


def _rules(raw: Mapping[str, Any], key: str) -> Iterable[tuple[str, Mapping[str, Any]]]:
    value = raw.get(key, [])
    if not isinstance(value, list):
        raise PolicyError(f"[[{key}]] must be an array of tables")
    for i, rule in enumerate(value):
        if not isinstance(rule, Mapping):
            raise PolicyError(f"{key}[{i}] must be a table")
        yield str(rule.get("name", f"{key}[{i}]")), rule


def _detector(name: str, raw: Mapping[str, Any]) -> DetectorPolicy:
    action = raw.get("action", DEFAULT_ACTIONS[name])
    if action not in ACTIONS:
        raise PolicyError(f"detectors.{name}.action must be one of {ACTIONS}, got {action!r}")
    downgrade = raw.get("downgrade_action", "alert")
    if downgrade not in ACTIONS:
        raise PolicyError(f"detectors.{name}.downgrade_action must be one of {ACTIONS}")
    reason = raw.get("reason", DEFAULT_REASONS[name])
    preserve = raw.get("preserve_refresh_tokens", False)
    if not isinstance(reason, str) or not isinstance(preserve, bool):
        raise PolicyError(f"detectors.{name}: reason must be text, preserve_refresh_tokens bool")
    known = {"action", "downgrade_action", "reason", "preserve_refresh_tokens"}
    if name == "impossible_travel":
        known |= {"max_speed_kmh", "min_distance_km"}
    unknown = set(raw) - known
    if unknown:
        raise PolicyError(f"detectors.{name}: unknown keys {sorted(unknown)}")
    speed = raw.get("max_speed_kmh", 1000.0)
    distance = raw.get("min_distance_km", 500.0)
    for key, value in (("max_speed_kmh", speed), ("min_distance_km", distance)):
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise PolicyError(f"detectors.{name}.{key} must be a positive number")
    return DetectorPolicy(action, reason, preserve, downgrade, float(speed), float(distance))


def policy_from_mapping(raw: Mapping[str, Any]) -> Policy:
    """Build a validated Policy; missing sections take the documented defaults."""
    # `enforcement` holds the enforcer's rails (worker/enforce/rails.py validates
    # it); it changes no decision, so it is neither read nor hashed here.
    unknown = set(raw) - {"tenant", "detectors", "allow", "expiry_rules", "cookie_rules",
                          "enforcement"}
    if unknown:
        raise PolicyError(f"unknown policy sections {sorted(unknown)}")
    tenant = _table(raw, "tenant")
    detectors_raw = _table(raw, "detectors")
    unknown = set(detectors_raw) - set(DETECTORS)
    if unknown:
        raise PolicyError(f"unknown detectors {sorted(unknown)}; known: {list(DETECTORS)}")
    detectors = {}
    for name in DETECTORS:
        section = detectors_raw.get(name, {})
        if not isinstance(section, Mapping):
            raise PolicyError(f"[detectors.{name}] must be a table")
        detectors[name] = _detector(name, section)
    allow = _table(raw, "allow")
    expiry = []
    for name, rule in _rules(raw, "expiry_rules"):
        er = ExpiryRule(name, _match(rule.get("match", {}), name),
                        _ms(rule.get("absolute_timeout_ms"), f"{name}.absolute_timeout_ms"),
                        _ms(rule.get("idle_timeout_ms"), f"{name}.idle_timeout_ms"))
        if er.absolute_timeout_ms is None and er.idle_timeout_ms is None:
            raise PolicyError(f"{name} sets neither absolute_timeout_ms nor idle_timeout_ms")
        expiry.append(er)
    cookies = []
    for name, rule in _rules(raw, "cookie_rules"):
        mode = rule.get("mode", "non-persistent")
        if mode not in COOKIE_MODES:
            raise PolicyError(f"{name}.mode must be one of {COOKIE_MODES}, got {mode!r}")
        cookies.append(CookieRule(name, _match(rule.get("match", {}), name), mode))
    absolute_ms = _hours(tenant.get("absolute_lifetime_hours", 168),
                         "tenant.absolute_lifetime_hours")
    idle_ms = _hours(tenant.get("idle_lifetime_hours", 72), "tenant.idle_lifetime_hours")
    policy_content: dict[str, Any] = {
        "tenant": {"absolute_lifetime_ms": absolute_ms, "idle_lifetime_ms": idle_ms},
        "detectors": {k: [v.action, v.reason, v.preserve_refresh_tokens, v.downgrade_action,
                          v.max_speed_kmh, v.min_distance_km]
                      for k, v in detectors.items()},
        "allow": [sorted(map(str, _cidrs(allow.get("cidrs"), "allow.cidrs"))),
                  sorted(_asns(allow.get("asns"), "allow.asns"))],
        "expiry_rules": [[*_rule_repr(r.name, r.match), r.absolute_timeout_ms, r.idle_timeout_ms]
                         for r in expiry],
        "cookie_rules": [[*_rule_repr(r.name, r.match), r.mode] for r in cookies],
    }
    digest = hashlib.sha256(orjson.dumps(policy_content, option=orjson.OPT_SORT_KEYS))
    return Policy(
        absolute_lifetime_ms=absolute_ms,
        idle_lifetime_ms=idle_ms,
        detectors=detectors,
        allow_cidrs=_cidrs(allow.get("cidrs"), "allow.cidrs"),
        allow_asns=_asns(allow.get("asns"), "allow.asns"),
        expiry_rules=tuple(expiry),
        cookie_rules=tuple(cookies),
        version="sha256:" + digest.hexdigest()[:16],
    )


def _rule_repr(name: str, m: Match) -> list[Any]:
    return [name, sorted(m.groups), sorted(m.connections), sorted(m.organizations),
            sorted(m.clients), sorted(map(str, m.cidrs)), sorted(m.asns)]


DEFAULT_POLICY = policy_from_mapping({})
