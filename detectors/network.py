"""Network detectors: IP binding, ASN binding and anonymizing networks.

Each compares the current request with the session's initial device values,
as the seed's post-login Actions do with `event.session.device.initial_*`.
"""

from __future__ import annotations

from detectors.model import Baseline, EnrichedEvent, Finding
from detectors.policy import Policy


def _finding(name: str, policy: Policy, severity: str, evidence: dict[str, object],
             kind: str = "") -> Finding | None:
    rule = policy.detector(name)
    if rule.action == "off":
        return None
    return Finding(name, rule.action, rule.reason, severity, evidence,
                   rule.preserve_refresh_tokens, kind)


def _repeat_alert(policy: Policy, name: str, same_as_last: bool) -> bool:
    """Alert-only findings fire once per new value, not on every later event."""
    return policy.detector(name).action == "alert" and same_as_last


def ip_binding(ev: EnrichedEvent, base: Baseline, policy: Policy) -> Finding | None:
    """The session left the IP address it was created from."""
    ip = ev.network.ip
    if ip == base.initial_ip or policy.allowed(ip, ev.network.asn):
        return None
    if _repeat_alert(policy, "ip_binding", ip == base.last_ip):
        return None
    same_asn = ev.network.asn is not None and ev.network.asn == base.initial_asn
    return _finding("ip_binding", policy, "low" if same_asn else "medium", {
        "initial_ip": base.initial_ip,
        "current_ip": ip,
        "initial_asn": base.initial_asn,
        "current_asn": ev.network.asn,
        "same_asn": same_asn,
    })


def asn_binding(ev: EnrichedEvent, base: Baseline, policy: Policy) -> Finding | None:
    """The session moved to another autonomous system (both ASNs must be known)."""
    asn = ev.network.asn
    if asn is None or base.initial_asn is None or asn == base.initial_asn:
        return None
    if policy.allowed(ev.network.ip, asn):
        return None
    if _repeat_alert(policy, "asn_binding", asn == base.last_asn):
        return None
    return _finding("asn_binding", policy, "high", {
        "initial_asn": base.initial_asn,
        "current_asn": asn,
        "current_asn_org": ev.network.as_org,
        "asn_source": ev.network.asn_source,
        "initial_ip": base.initial_ip,
        "current_ip": ev.network.ip,
    })


def anonymous_network(ev: EnrichedEvent, base: Baseline | None,
                      policy: Policy) -> Finding | None:
    """The request comes from a VPN, proxy, hosting provider or Tor exit node."""
    flags = ev.network.anonymous
    if not flags or policy.allowed(ev.network.ip, ev.network.asn):
        return None
    if base is not None and ev.network.ip == base.last_ip:
        return None
    return _finding("anonymous_network", policy, "medium", {
        "current_ip": ev.network.ip,
        "flags": list(flags),
        "initial_ip": base.initial_ip if base is not None else ev.network.ip,
    })
