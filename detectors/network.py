"""Network detectors: where the session's requests come from.

- `asn_binding` (graduated): the session moved to a network it has not used.
  What that means depends on the *user*: a network the user's other
  sessions used is no evidence at all; a new one of a kind people roam to
  (a mobile carrier, the same operator, a new country, a network whose ASN
  is unknown) asks for a step-up; the policy says which (NETWORK_KINDS).
- `hosting_network` and `anonymous_network`: the session moved onto a
  datacenter/cloud network or an anonymizer (Tor, VPN service, proxy; also
  the IdP's own proxy verdict). A session that *starts* there only alerts.
- `ip_binding`: another address inside the session's networks (DHCP, CGNAT,
  IPv6 privacy addresses): off by default, as that is everyday life.

A network is identified by its ASN, and where the ASN is unknown on either
side, by its IPv4 /24 or IPv6 /64 prefix, so an attacker address without a
known ASN is a change, not "no change" (fail closed). An unchanged address
is never a change, whichever ASN sources disagree about it. Allowlisted
networks (tenant egress, corporate VPN exits) never count as a change when
either the session's first network or the current one is on the list.
"""

from __future__ import annotations

from typing import Any

from detectors.model import Baseline, EnrichedEvent, Finding, UserProfile
from detectors.policy import Policy
from detectors.profile import describe, known, network_keys, prefix_of

ANONYMOUS_SEVERITY = {"tor_exit_node": "high", "public_proxy": "high",
                      "residential_proxy": "high", "anonymous_vpn": "medium",
                      "idp_proxy": "medium"}


def unchanged_address(ev: EnrichedEvent, base: Baseline) -> bool:
    """The address is the session's first one, or one it used without a finding."""
    ip = ev.network.ip
    return ip == base.initial_ip or ip in base.seen_ips


def accepted(ev: EnrichedEvent, base: Baseline) -> bool:
    """The current network is one the session has used (by ASN, or by prefix)."""
    keys = base.accepted_networks
    n = ev.network
    return (n.asn is not None and f"AS{n.asn}" in keys) or f"P:{prefix_of(n.ip)}" in keys


def allowlisted(ev: EnrichedEvent, base: Baseline, policy: Policy) -> bool:
    """The current network, or the one the session started on, is a trusted one."""
    n = ev.network
    return policy.allowed(n.ip, n.asn) or policy.allowed(base.initial_ip, base.initial_asn)


def _finding(name: str, action: str, policy: Policy, severity: str,
             evidence: dict[str, Any], kind: str = "") -> Finding | None:
    if action == "off":
        return None
    rule = policy.detector(name)
    return Finding(name, action, rule.reason, severity, evidence,
                   rule.preserve_refresh_tokens, kind)


def network_change(ev: EnrichedEvent, base: Baseline, profile: UserProfile | None,
                   policy: Policy, tag: int, signals: list[dict[str, Any]]) -> Finding | None:
    """The session's request comes from a network the session has not used."""
    n = ev.network
    where = f"AS{n.asn}" if n.asn is not None else f"prefix {prefix_of(n.ip)} (ASN unknown)"
    if unchanged_address(ev, base) or accepted(ev, base):
        signals.append({"signal": "network", "value": where, "assessment": "session's own"})
        return None
    if allowlisted(ev, base, policy):
        signals.append({"signal": "network", "value": where, "assessment": "allowlisted"})
        return None
    now = ev.event.occurred_at
    pp = policy.profile
    seen = None
    if profile is not None:
        seen = (known(profile.networks, f"AS{n.asn}", tag, now, pp) if n.asn is not None
                else None) or known(profile.prefixes, prefix_of(n.ip), tag, now, pp)
    operator_key = f"OP:{n.operator}" if n.operator else None
    country_known = n.country is None or n.country == base.initial_country or (
        profile is not None and known(profile.countries, n.country, tag, now, pp) is not None)
    if seen is not None:
        kind = "known_network"
    elif operator_key is not None and operator_key in base.accepted_networks:
        kind = "same_operator"
    elif n.asn is None or base.initial_asn is None:
        kind = "unknown_network"
    elif not country_known:
        kind = "new_country"
    elif n.mobile:
        kind = "mobile_network"
    else:
        kind = "new_network"
    evidence = {
        "initial_ip": base.initial_ip, "current_ip": n.ip,
        "initial_asn": base.initial_asn, "current_asn": n.asn,
        "current_asn_org": n.as_org, "asn_source": n.asn_source,
        "current_prefix": prefix_of(n.ip), "current_country": n.country,
        "mobile": n.mobile, "operator": n.operator,
        "profile": describe(where, seen, now) if profile is not None else "no user profile",
    }
    action = policy.detector("asn_binding").action_for(kind)
    signals.append({"signal": "network", "value": where, "assessment": kind,
                    "action": action, "evidence": evidence["profile"]})
    severity = "low" if kind in ("known_network", "same_operator") else "medium"
    return _finding("asn_binding", action, policy, severity, evidence, kind)


def _moved_onto(ev: EnrichedEvent, base: Baseline | None, started_there: bool) -> bool:
    """A new address of the kind the session did not start on (any ASN: a residential
    proxy inside the user's own ISP is still a proxy)."""
    return base is not None and not started_there and not unchanged_address(ev, base)


def hosting_network(ev: EnrichedEvent, base: Baseline | None, policy: Policy,
                    signals: list[dict[str, Any]]) -> Finding | None:
    """The request comes from a datacenter/cloud network (cookies replayed from a VPS)."""
    n = ev.network
    if not n.hosting or policy.allowed(n.ip, n.asn):
        return None
    moved = _moved_onto(ev, base, base is not None and base.initial_hosting)
    if base is not None and not moved:
        return None  # the session started there (a cloud desktop, a relay): nothing new
    action = policy.detector("hosting_network").action if moved else _alert_only(
        policy, "hosting_network")
    signals.append({"signal": "hosting", "value": n.as_org or f"AS{n.asn}",
                    "assessment": "moved onto" if moved else "session starts there",
                    "action": action})
    return _finding("hosting_network", action, policy, "high" if moved else "low", {
        "current_ip": n.ip, "current_asn": n.asn, "current_asn_org": n.as_org,
        "initial_ip": base.initial_ip if base is not None else n.ip,
        "session_start": not moved})


def anonymous_network(ev: EnrichedEvent, base: Baseline | None, policy: Policy,
                      signals: list[dict[str, Any]]) -> Finding | None:
    """The request comes through Tor, a VPN service or a proxy (databases or the IdP)."""
    n = ev.network
    flags = n.anonymous
    if not flags or policy.allowed(n.ip, n.asn):
        return None
    moved = _moved_onto(ev, base, base is not None and base.initial_anonymous)
    if base is not None and not moved:
        return None
    action = policy.detector("anonymous_network").action if moved else _alert_only(
        policy, "anonymous_network")
    severity = max((ANONYMOUS_SEVERITY.get(f, "medium") for f in flags),
                   key=("low", "medium", "high").index)
    signals.append({"signal": "anonymizer", "value": ",".join(flags),
                    "assessment": "moved onto" if moved else "session starts there",
                    "action": action})
    return _finding("anonymous_network", action, policy, severity if moved else "low", {
        "current_ip": n.ip, "flags": list(flags),
        "initial_ip": base.initial_ip if base is not None else n.ip,
        "session_start": not moved})


def _alert_only(policy: Policy, name: str) -> str:
    """At a session's first request a network flag is worth an alert, never more."""
    return "off" if policy.detector(name).action == "off" else "alert"


def ip_binding(ev: EnrichedEvent, base: Baseline, policy: Policy) -> Finding | None:
    """The session's address changed (any change; inside the same ASN it is severity low)."""
    ip = ev.network.ip
    if ip == base.initial_ip or policy.allowed(ip, ev.network.asn):
        return None
    action = policy.detector("ip_binding").action
    if action == "off" or (action == "alert" and ip in (base.last_ip, *base.seen_ips)):
        return None  # alert-only findings fire once per new address
    same_asn = ev.network.asn is not None and ev.network.asn == base.initial_asn
    return _finding("ip_binding", action, policy, "low" if same_asn else "medium", {
        "initial_ip": base.initial_ip,
        "current_ip": ip,
        "initial_asn": base.initial_asn,
        "current_asn": ev.network.asn,
        "same_asn": same_asn,
    })


def accept_network(base: Baseline, ev: EnrichedEvent, limit: int = 16) -> None:
    """The session now uses this network without a finding: remember its keys."""
    for key in network_keys(ev):
        if key not in base.accepted_networks:
            base.accepted_networks.append(key)
    if len(base.accepted_networks) > limit:
        # Keep the first network's keys, drop the oldest of the others.
        del base.accepted_networks[3:len(base.accepted_networks) - limit + 3]


def remember_ip(base: Baseline, ip: str, limit: int = 8) -> None:
    seen = base.seen_ips
    if ip in seen:
        seen.remove(ip)
    seen.append(ip)
    if len(seen) > limit:
        del seen[0]
