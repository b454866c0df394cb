"""What each detector's alert says: title, ATT&CK mapping, runbook, confidence, observables.

One table, keyed by detector (or `detector/kind`), so that a new detector
gets a complete alert by adding one entry here and nothing in the builder
(`detectors.records.alert`). A detector without an entry still gets a valid
alert from `GENERIC`, with a neutral title and no ATT&CK mapping.

Titles are `str.format` templates over the finding's evidence (nested dicts
are indexable, `{initial[browser]}`; lists render comma-separated, missing
values as "unknown") plus `{user}` and `{session}`. A template that names a
key the evidence lacks falls back to the generic title rather than failing:
detectors gain evidence fields over time.

ATT&CK: technique and sub-technique ids and names as published by MITRE
ATT&CK Enterprise (checked against v18). Each mapping names one tactic that
has kept its id across releases (Credential Access TA0006, Lateral Movement
TA0008, Initial Access TA0001, Command and Control TA0011), not Defense
Evasion, which v19 splits.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

ATTACK_VERSION = "v18"
"""The ATT&CK Enterprise release the ids and names below were checked against."""


@dataclass(frozen=True, slots=True)
class Attack:
    """One ATT&CK mapping: a tactic, a technique and optionally a sub-technique."""

    tactic: tuple[str, str]
    technique: tuple[str, str]
    sub_technique: tuple[str, str] | None = None

    @property
    def url(self) -> str:
        uid = (self.sub_technique or self.technique)[0]
        return "https://attack.mitre.org/techniques/" + uid.replace(".", "/") + "/"


CREDENTIAL_ACCESS = ("TA0006", "Credential Access")
LATERAL_MOVEMENT = ("TA0008", "Lateral Movement")
INITIAL_ACCESS = ("TA0001", "Initial Access")
COMMAND_AND_CONTROL = ("TA0011", "Command and Control")

STEAL_COOKIE = Attack(CREDENTIAL_ACCESS, ("T1539", "Steal Web Session Cookie"))
REPLAY_COOKIE = Attack(LATERAL_MOVEMENT, ("T1550", "Use Alternate Authentication Material"),
                       ("T1550.004", "Web Session Cookie"))
VALID_ACCOUNTS = Attack(INITIAL_ACCESS, ("T1078", "Valid Accounts"))
PROXY = Attack(COMMAND_AND_CONTROL, ("T1090", "Proxy"))

# Observable roles an alert can carry; the builder maps each to OCSF attributes.
USER, SESSION, IP, BASELINE_IP, COUNTRY, USER_AGENT, BASELINE_USER_AGENT = (
    "user", "session", "ip", "baseline_ip", "country", "user_agent", "baseline_user_agent")
ALL_OBSERVABLES = (USER, SESSION, IP, BASELINE_IP, COUNTRY, USER_AGENT, BASELINE_USER_AGENT)
NETWORK_OBSERVABLES = (USER, SESSION, IP, BASELINE_IP, COUNTRY, USER_AGENT)
DEVICE_OBSERVABLES = (USER, SESSION, IP, USER_AGENT, BASELINE_USER_AGENT)

LOW, MEDIUM, HIGH, UNKNOWN = "low", "medium", "high", "unknown"


def _fixed(level: str) -> Callable[[Mapping[str, Any]], str]:
    return lambda _evidence: level


def _evidence_confidence(evidence: Mapping[str, Any]) -> str:
    """For detectors without an entry: a `confidence` the detector put in its evidence."""
    value = evidence.get("confidence")
    return value if value in (LOW, MEDIUM, HIGH) else UNKNOWN


def _asn_confidence(evidence: Mapping[str, Any]) -> str:
    # The IdP's own ASN or a current MaxMind lookup is trustworthy; the pyasn
    # fallback table is old (2014) and may name a stale holder of the prefix.
    return MEDIUM if evidence.get("asn_source") == "pyasn" else HIGH


def _ip_confidence(evidence: Mapping[str, Any]) -> str:
    if evidence.get("same_asn"):
        return LOW  # CGNAT pools and IPv4/IPv6 switches inside one network
    if evidence.get("initial_asn") is None or evidence.get("current_asn") is None:
        return LOW
    return MEDIUM


def _device_confidence(evidence: Mapping[str, Any]) -> str:
    initial = evidence.get("initial") or {}
    current = evidence.get("current") or {}
    parsed = all(isinstance(side, Mapping) and side.get("browser") not in (None, "Other")
                 for side in (initial, current))
    return HIGH if parsed else MEDIUM  # two unparseable strings may be one odd client


def _anonymous_confidence(evidence: Mapping[str, Any]) -> str:
    flags = set(evidence.get("flags") or ())
    return HIGH if "tor_exit_node" in flags else MEDIUM


def _travel_confidence(evidence: Mapping[str, Any]) -> str:
    # City-level geolocation is off by tens to hundreds of km; a long hop is
    # robust against that, a short one much less so.
    distance = evidence.get("distance_km")
    return HIGH if isinstance(distance, (int, float)) and distance >= 2000 else MEDIUM


@dataclass(frozen=True, slots=True)
class DetectorInfo:
    """Everything an alert says about one detector (or one kind of its findings)."""

    name: str
    """Human name of the analytic, e.g. "Session ASN binding"."""
    title: str
    """`str.format` template of `finding_info.title` (see the module doc)."""
    types: tuple[str, ...]
    """`finding_info.types`: categories a SOC filters on."""
    runbook: str
    """What to check, and the likely false positives (`remediation.desc`)."""
    attacks: tuple[Attack, ...] = ()
    confidence: Callable[[Mapping[str, Any]], str] = field(default=_evidence_confidence)
    observables: tuple[str, ...] = ALL_OBSERVABLES


GENERIC = DetectorInfo(
    name="Session anomaly",
    title="Session of {user}: {detector}",
    types=("Session Anomaly",),
    runbook=(
        "Check: compare this request with the session's baseline in the evidences (IP, "
        "network, user agent) and ask the user whether they recognise the activity. "
        "False positives: depend on the detector; see docs/outputs.md."),
)

CATALOG: dict[str, DetectorInfo] = {
    "asn_binding": DetectorInfo(
        name="Session ASN binding",
        title="Session of {user} moved from AS{initial_asn} to AS{current_asn} "
              "({current_ip})",
        types=("Session Hijacking", "Network Change"),
        attacks=(REPLAY_COOKIE, STEAL_COOKIE),
        confidence=_asn_confidence,
        observables=NETWORK_OBSERVABLES,
        runbook=(
            "Check: is the new network one the user plausibly uses (home ISP, mobile "
            "carrier, office, corporate VPN egress)? Look for other sessions of the user "
            "from the same new AS, and for a login from it before this request: a session "
            "cookie used from a network that never logged in is the replay pattern. "
            "False positives: Wi-Fi to mobile data switches, corporate VPN or zero-trust "
            "proxy egress changes, travel; add trusted networks to [allow] in the policy."),
    ),
    "ip_binding": DetectorInfo(
        name="Session IP binding",
        title="Session of {user} changed IP from {initial_ip} to {current_ip}",
        types=("Session Hijacking", "Network Change"),
        attacks=(REPLAY_COOKIE,),
        confidence=_ip_confidence,
        observables=NETWORK_OBSERVABLES,
        runbook=(
            "Check: same_asn in the evidence; an IP change inside one network is usually "
            "benign, a change of network with the same user agent may be a replayed cookie. "
            "Correlate with an asn_binding or ua_drift alert on the same session. "
            "False positives: carrier-grade NAT pools, IPv4/IPv6 dual stack, DHCP renewals, "
            "load-balanced egress proxies."),
    ),
    "ua_drift/device_change": DetectorInfo(
        name="Session device change",
        title="Session of {user} switched device from {initial[browser]} on {initial[os]} "
              "to {current[browser]} on {current[os]}",
        types=("Session Hijacking", "Device Change"),
        attacks=(REPLAY_COOKIE, STEAL_COOKIE),
        confidence=_device_confidence,
        observables=DEVICE_OBSERVABLES,
        runbook=(
            "Check: the two user agents in the evidences; a different browser family or "
            "operating system inside one session means the session cookie is used by another "
            "client. Ask the user, check the new client's IP and network, and look for "
            "infostealer activity on the user's device. "
            "False positives: browser extensions or privacy tools that rewrite the "
            "User-Agent, in-app browsers, mobile/desktop mode switches."),
    ),
    "ua_drift/downgrade": DetectorInfo(
        name="Session browser downgrade",
        title="Session of {user} downgraded {current[browser]} from {last_version} to "
              "{current[version]}",
        types=("Session Hijacking", "Device Change"),
        attacks=(REPLAY_COOKIE,),
        confidence=_fixed(MEDIUM),
        observables=DEVICE_OBSERVABLES,
        runbook=(
            "Check: same browser and OS but an older major version than seen earlier in the "
            "session; replay tools often send a stale User-Agent. Compare IP and network "
            "with the baseline. "
            "False positives: a user with two installations (stable and ESR), enterprise "
            "rollbacks, User-Agent reduction or spoofing extensions."),
    ),
    "anonymous_network": DetectorInfo(
        name="Session from an anonymizing network",
        title="Session of {user} used an anonymizing network ({flags}) at {current_ip}",
        types=("Suspicious Network", "Anonymizing Proxy"),
        attacks=(PROXY, VALID_ACCOUNTS),
        confidence=_anonymous_confidence,
        observables=NETWORK_OBSERVABLES,
        runbook=(
            "Check: which anonymizer (flags: anonymous_vpn, tor_exit_node, public_proxy, "
            "hosting_provider, residential_proxy) and whether the user or the organisation "
            "uses it; Tor and residential proxies from a corporate account are rare. "
            "False positives: consumer VPNs, privacy relays (iCloud Private Relay), "
            "cloud-hosted virtual desktops and CI runners."),
    ),
    "impossible_travel": DetectorInfo(
        name="Session impossible travel",
        title="Session of {user} travelled {distance_km} km in {elapsed_s} s "
              "({from[ip]} to {to[ip]})",
        types=("Session Hijacking", "Impossible Travel"),
        attacks=(REPLAY_COOKIE, VALID_ACCOUNTS),
        confidence=_travel_confidence,
        observables=NETWORK_OBSERVABLES,
        runbook=(
            "Check: the two locations and the elapsed time; one session used from both means "
            "a shared or stolen cookie. Check whether either IP is a VPN or proxy egress. "
            "False positives: VPN connect/disconnect, mobile carriers that geolocate to a "
            "distant gateway, inaccurate geolocation of new or reassigned ranges."),
    ),
}


def info_for(detector: str, kind: str = "") -> DetectorInfo:
    """The catalog entry of a detector's finding: `detector/kind`, `detector`, or GENERIC."""
    if kind:
        found = CATALOG.get(f"{detector}/{kind}")
        if found is not None:
            return found
    return CATALOG.get(detector, GENERIC)


class _Context(dict[str, Any]):
    """Format context: lists joined, None shown as "unknown", nested dicts wrapped."""

    def __getitem__(self, key: str) -> Any:
        return _display(super().__getitem__(key))


def _display(value: Any) -> Any:
    if value is None:
        return "unknown"
    if isinstance(value, Mapping):
        return _Context(value)
    if isinstance(value, (list, tuple)):
        return ", ".join(str(_display(v)) for v in value) or "none"
    return value


def render_title(info: DetectorInfo, evidence: Mapping[str, Any], *, user: str | None,
                 session: str, detector: str, kind: str) -> str:
    """The alert title: the entry's template, or the generic one if it does not fit."""
    context = _Context(evidence)
    context.update(user=user or f"unknown user (session {session})", session=session,
                   detector=detector + (f" ({kind})" if kind else ""))
    try:
        return info.title.format_map(context)
    except (KeyError, IndexError, TypeError, ValueError, AttributeError):
        return GENERIC.title.format_map(context)
