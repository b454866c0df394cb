"""The decision engine: `evaluate(event, baseline, policy) -> Decision`.

Does for every session event what the seed's post-login session Actions do
for one transaction: compare the request with the session's device baseline,
revoke on a policy violation, otherwise apply the expiry and cookie rules.
No I/O, no wall clock ("now" is the event's time), no randomness, so replay
and the live worker reach byte-identical decisions.
"""

from __future__ import annotations

import hashlib
from typing import Any

from detectors.device import automation_client, device_token_change, idp_risk
from detectors.model import Baseline, Decision, EnrichedEvent, EventType, Finding, UserProfile
from detectors.network import (
    accept_network,
    anonymous_network,
    hosting_network,
    ip_binding,
    network_change,
    remember_ip,
)
from detectors.policy import STRENGTH, Match, Policy
from detectors.profile import learn, network_keys, session_tag
from detectors.records import alert, audit, command, event_summary, explanation
from detectors.timefmt import format_time
from detectors.travel import impossible_travel, remember_location, trusted_location
from detectors.ua_drift import ua_drift

DEDUP_WINDOW = 32
"""Event ids remembered per session to drop re-deliveries (Kafka is at-least-once)."""
_SHORT_ID = 16


def dedup_key(event_id: str) -> str:
    """What the baseline remembers of an event id: itself if short, else a 64-bit hash.

    IdP ids are long (Auth0 log_ids have 56 digits); 32 of them would be most
    of a baseline. A 64-bit hash keeps the chance of a false duplicate within
    a 32-event window near 32 / 2**64.
    """
    if len(event_id) <= _SHORT_ID:
        return event_id
    return hashlib.blake2b(event_id.encode(), digest_size=8).hexdigest()


def new_baseline(ev: EnrichedEvent) -> Baseline:
    """The first event seen for a session sets its device baseline."""
    e, n, a = ev.event, ev.network, ev.agent
    located = trusted_location(ev)
    return Baseline(
        session_id=e.session.id,
        tenant=e.tenant,
        user_id=e.user_id,
        initial_ip=n.ip,
        initial_asn=n.asn,
        initial_user_agent=a.raw if a else None,
        initial_country=n.country,
        initial_city=n.city,
        initial_latitude=n.latitude,
        initial_longitude=n.longitude,
        last_ip=n.ip,
        last_asn=n.asn,
        last_user_agent=a.raw if a else None,
        initial_agent_family=a.family if a else None,
        initial_os_family=a.os_family if a else None,
        last_agent_version=a.version if a else None,
        last_latitude=n.latitude if located else None,
        last_longitude=n.longitude if located else None,
        last_geo_at=e.occurred_at if located else None,
        created_at=e.session.created_at if e.session.created_at is not None else e.occurred_at,
        authenticated_at=e.session.authenticated_at
        if e.session.authenticated_at is not None
        else (e.occurred_at if e.type is EventType.LOGIN else None),
        last_interacted_at=e.occurred_at,
        first_event_type=e.type.value,
        expires_at=e.session.expires_at,
        idle_expires_at=e.session.idle_expires_at,
        accepted_networks=list(network_keys(ev)),
        seen_ips=[n.ip],
        initial_automation=bool(a is not None and a.automation),
        initial_anonymous=bool(n.anonymous),
        initial_hosting=n.hosting,
        device_token=e.device_token,
        last_accuracy_km=n.accuracy_km if located else None,
        last_ip_located=n.ip if located else None,
    )


MAX_TIMEOUT_MS = 100 * 365 * 86_400_000
"""Timeouts beyond a century are configuration errors, not session lifetimes."""


def _timeout(value: object) -> int | None:
    """A metadata timeout in milliseconds ("3600000" or 3600000); None if unusable."""
    if value is None:  # the usual case: metadata comes with the login only
        return None
    n = _timeout_value(value)
    return n if n is not None and n <= MAX_TIMEOUT_MS else None


def _timeout_value(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value > 0 else None
    if isinstance(value, str) and value.strip().isascii() and value.strip().isdigit():
        n = int(value.strip())
        return n if n > 0 else None
    if isinstance(value, float) and 0 < value < float("inf"):
        return int(value)
    return None


def _matches(m: Match, ev: EnrichedEvent, policy: Policy) -> bool:
    e = ev.event
    return bool(
        (m.groups and not m.groups.isdisjoint(e.groups))
        or (m.connections and e.connection in m.connections)
        or (m.organizations and e.organization in m.organizations)
        or (m.clients and e.client_id in m.clients)
        or (m.asns and ev.network.asn in m.asns)
        or (m.cidrs and policy.ip_in(ev.network.ip, m.cidrs))
    )


def _detect(ev: EnrichedEvent, base: Baseline, first: bool, policy: Policy,
            profile: UserProfile | None, tag: int,
            signals: list[dict[str, Any]]) -> list[Finding]:
    """Every detector's verdict on this request; `signals` records what each considered."""
    findings: list[Finding] = []

    def add(f: Finding | None) -> None:
        if f is not None:
            findings.append(f)

    if not first:
        add(network_change(ev, base, profile, policy, tag, signals))
        add(ip_binding(ev, base, policy))
        rule = policy.detector("ua_drift")
        if rule.action != "off" or rule.downgrade_action != "off":
            add(ua_drift(ev, base, rule.action, rule.downgrade_action, rule.reason,
                         rule.preserve_refresh_tokens))
        add(impossible_travel(ev, base, policy))
        add(automation_client(ev, base, policy))
        add(device_token_change(ev, base, policy))
    add(hosting_network(ev, None if first else base, policy, signals))
    add(anonymous_network(ev, None if first else base, policy, signals))
    add(idp_risk(ev, first, policy))
    if ev.agent is not None:
        signals.append({"signal": "device", "value": f"{ev.agent.family} on "
                        f"{ev.agent.os_family}", "assessment": next(
                            (f.kind or f.detector for f in findings
                             if f.detector in ("ua_drift", "automation_client")), "unchanged")})
    return findings


def strongest(findings: list[Finding]) -> Finding:
    """The finding that best explains a response: the strongest evidence of a hijack."""
    return min(findings, key=lambda f: (STRENGTH.index(f.detector) if f.detector in STRENGTH
                                        else len(STRENGTH), f.detector))


def _cause_key(f: Finding, ev: EnrichedEvent) -> str:
    """What a step-up is about: the detector and the network the request came from."""
    return f"{f.detector}:{network_keys(ev)[0]}"


def _reauthenticated(ev: EnrichedEvent, base: Baseline) -> bool:
    """The IdP reports an authentication newer than the session's last one.

    Only explicit evidence counts (a newer `session.authenticated_at`): an
    SSO log-in that rides on the session cookie is no proof of the user.
    """
    at = ev.event.session.authenticated_at
    return at is not None and (base.authenticated_at is None or at > base.authenticated_at)


def _remember(base: Baseline, ev: EnrichedEvent) -> None:
    """Move the 'last seen' half of the baseline to this event."""
    e, n, a = ev.event, ev.network, ev.agent
    base.last_ip = n.ip
    if n.asn is not None:
        base.last_asn = n.asn
    if a is not None:
        if base.initial_user_agent is None:  # first event had no UA: adopt this one
            base.initial_user_agent = a.raw
            base.initial_agent_family = a.family
            base.initial_os_family = a.os_family
            base.initial_automation = a.automation
        base.last_user_agent = a.raw
        if a.family == base.initial_agent_family:
            last = base.last_agent_version
            base.last_agent_version = a.version if last is None else max(last, a.version)
    if base.initial_asn is None and n.asn is not None and n.ip == base.initial_ip:
        base.initial_asn = n.asn  # the IdP named the ASN of the initial IP later
    if e.user_id and not base.user_id:
        base.user_id = e.user_id
    base.last_interacted_at = max(base.last_interacted_at, e.occurred_at)
    if e.session.authenticated_at is not None:
        base.authenticated_at = max(base.authenticated_at or 0, e.session.authenticated_at)
    elif e.type is EventType.LOGIN:
        base.authenticated_at = e.occurred_at
    base.events_seen += 1


class _Why:
    """The decision's explanation, built once and only if a record carries it."""

    __slots__ = ("_args", "_value")

    def __init__(self, ev: EnrichedEvent, base: Baseline, policy_version: str,
                 findings: list[Finding], rules: list[str],
                 signals: list[dict[str, Any]]) -> None:
        self._args = (ev, base, policy_version, findings, rules, signals)
        self._value: dict[str, Any] | None = None

    def __call__(self) -> dict[str, Any]:
        if self._value is None:
            self._value = explanation(*self._args)
        return self._value

    def brief(self) -> dict[str, Any]:
        """What an expiry or cookie command needs explained: the event and the rules.

        Risk decisions carry the full explanation; an idle expiry re-applied on
        an interaction does not need the baseline and every signal again.
        """
        ev, _base, policy_version, _findings, rules, _signals = self._args
        return {"policy_version": policy_version, "event": event_summary(ev.event),
                "rules": rules}


def _expiry_commands(ev: EnrichedEvent, base: Baseline, policy: Policy, decision: Decision,
                     why: _Why, rules: list[str]) -> None:
    """The seed's expiry and cookie-mode rules, with tenant limits and precedence."""
    e = ev.event
    now = e.occurred_at
    created = e.session.created_at if e.session.created_at is not None else base.created_at
    absolute: list[tuple[int, str]] = []
    idle: list[tuple[int, str]] = []
    # Metadata usually comes with the login only; the baseline remembers it so
    # that later interactions re-apply the rule (the seed's idle semantics).
    t = _timeout(e.connection_metadata.get("session_timeout"))
    if t is not None:
        base.connection_timeout_ms = t
    t = base.connection_timeout_ms
    if t is not None:
        absolute.append((created + t, f"connection session_timeout={t}"))
    t = _timeout(e.organization_metadata.get("idle_session_timeout"))
    if t is not None:
        base.idle_timeout_ms = t
    t = base.idle_timeout_ms
    if t is not None:
        idle.append((now + t, f"organization idle_session_timeout={t}"))
    mode: tuple[str, str] | None = None
    for rule in policy.expiry_rules:
        if _matches(rule.match, ev, policy):
            if rule.absolute_timeout_ms is not None:
                absolute.append((created + rule.absolute_timeout_ms, f"expiry rule {rule.name}"))
            if rule.idle_timeout_ms is not None:
                idle.append((now + rule.idle_timeout_ms, f"expiry rule {rule.name}"))
    for cookie in policy.cookie_rules:
        if _matches(cookie.match, ev, policy):
            mode = (cookie.mode, f"cookie rule {cookie.name}")  # the last match wins
    pv = policy.version
    if absolute:
        value, source = min(absolute)  # the earliest expiry wins
        limit = created + policy.absolute_lifetime_ms
        _set_expiry(ev, base, decision, why, rules, "set_expires_at", "expires_at",
                    value, source, limit, "absolute", pv)
    if idle:
        value, source = min(idle)
        limit = now + policy.idle_lifetime_ms
        if _moves_enforcement(value, limit, base, value - now, policy.min_idle_extension_ms):
            _set_expiry(ev, base, decision, why, rules, "set_idle_expires_at",
                        "idle_expires_at", value, source, limit, "idle", pv)
    _cookie_mode(ev, base, decision, why, rules, mode, pv)


def _moves_enforcement(value: int, limit: int, base: Baseline, timeout: int,
                       min_extension_ms: int) -> bool:
    """Whether a new idle expiry changes what the IdP enforces (docs/engine.md).

    Not when the session ends at its absolute expiry before either the
    current or the new idle deadline could; not when it only pushes the
    current deadline later by less than `min_idle_extension_ms` (capped at a
    quarter of the idle timeout): an active user's session then expires at
    most that much earlier than it would with a command per request, and the
    IdP is spared a command per request.
    """
    current = base.idle_expires_at
    if current is None:
        return True
    value = min(value, limit)
    expires = base.expires_at
    if expires is not None and value >= expires and current >= expires:
        return False
    return not 0 <= value - current < min(min_extension_ms, max(timeout, 0) // 4)


def _cookie_mode(ev: EnrichedEvent, base: Baseline, decision: Decision, why: _Why,
                 rules: list[str], mode: tuple[str, str] | None, pv: str) -> None:
    if mode is not None and mode[0] != base.cookie_mode:
        rules.append(mode[1])
        cmd = command(ev, base, "set_cookie_mode", pv, mode=mode[0], reason=mode[1])
        decision.commands.append(cmd)
        decision.audit.append(audit(cmd, ev, f"Session cookie mode set to {mode[0]}",
                                    why.brief()))
        base.cookie_mode = mode[0]


def _set_expiry(ev: EnrichedEvent, base: Baseline, decision: Decision, why: _Why,
                rules: list[str], kind: str, field_name: str, value: int, source: str,
                limit: int, limit_name: str, policy_version: str) -> None:
    requested = value
    clamped = value > limit
    if clamped:
        value = limit
    current = base.expires_at if field_name == "expires_at" else base.idle_expires_at
    if value == current:
        return
    rules.append(source)
    cmd = command(ev, base, kind, policy_version, **{field_name: format_time(value)},
                  reason=source, clamped=clamped,
                  requested=format_time(requested) if clamped else None)
    decision.commands.append(cmd)
    decision.audit.append(audit(cmd, ev, f"Session {field_name} set to {format_time(value)}",
                                why.brief()))
    if clamped:
        decision.audit.append(audit(
            cmd, ev,
            f"Requested {field_name} {format_time(requested)} is above the tenant's "
            f"{limit_name} lifetime limit; clamped to {format_time(value)}",
            why.brief(), log_type="w"))
    if field_name == "expires_at":
        base.expires_at = value
    else:
        base.idle_expires_at = value


def evaluate(ev: EnrichedEvent, baseline: Baseline | None, policy: Policy,
             profile: UserProfile | None = None) -> Decision:
    """Decide what one event means for its session.

    `baseline` (the session's) and `profile` (the user's, None when the event
    names no user) are updated in place and returned in the Decision, so that
    the hot path allocates nothing it does not need; callers that keep the
    old ones must copy them first.
    """
    e = ev.event
    key = dedup_key(e.event_id)
    if baseline is not None and key in baseline.recent_event_ids:
        return Decision(baseline, profile, duplicate=True)
    first = baseline is None
    base = new_baseline(ev) if baseline is None else baseline
    ids = base.recent_event_ids
    ids.append(key)
    if len(ids) > DEDUP_WINDOW:
        del ids[0]
    decision = Decision(base, profile)
    if base.revoked:
        base.events_seen += 1
        decision.suppressed = "session already revoked"
        return decision
    if e.type is EventType.LOGOUT:
        _remember(base, ev)
        base.logged_out = True
        decision.suppressed = "logout"
        return decision
    tag = session_tag(e.session.id)
    signals = decision.signals
    findings = _detect(ev, base, first, policy, profile, tag, signals)
    reauthenticated = _reauthenticated(ev, base)
    if reauthenticated:
        # The user just authenticated from here: what a step-up asks for is done.
        findings = [f for f in findings if f.action != "step_up"]
        base.step_up = base.step_up_at = None
    decision.findings = findings
    rules: list[str] = []
    why = _Why(ev, base, policy.version, findings, rules, signals)
    revoking = [f for f in findings if f.action == "revoke"] if findings else findings
    stepping = [f for f in findings if f.action == "step_up"] if findings else findings
    cmd_id: str | None = None
    repeated: set[str] = set()
    if revoking:
        cause = strongest(revoking)
        cmd = command(ev, base, "revoke_session", policy.version,
                      reason=cause.reason,
                      preserve_refresh_tokens=all(f.preserve_refresh_tokens for f in revoking),
                      detections=[{"detector": f.detector, "kind": f.kind or None,
                                   "evidence": f.evidence} for f in findings])
        cmd_id = cmd["command_id"]
        decision.commands.append(cmd)
        decision.audit.append(audit(cmd, ev, cause.reason, why()))
        base.revoked = True
        base.revoked_at = e.occurred_at
    elif stepping:
        cause = strongest(stepping)
        cause_key = _cause_key(cause, ev)
        if base.step_up == cause_key:
            # Still waiting for the re-authentication this network already asked for.
            decision.suppressed = "step-up pending"
            repeated = {f.detector for f in stepping}
        else:
            cmd = command(ev, base, "require_reauthentication", policy.version,
                          reason=cause.reason,
                          detections=[{"detector": f.detector, "kind": f.kind or None,
                                       "evidence": f.evidence} for f in findings])
            cmd_id = cmd["command_id"]
            decision.commands.append(cmd)
            decision.audit.append(audit(cmd, ev, cause.reason, why()))
            base.step_up, base.step_up_at = cause_key, e.occurred_at
    if findings:
        response = "revoke" if revoking else "step_up" if cmd_id is not None else None
        decision.alerts.extend(alert(f, ev, base, policy.version, cmd_id, response)
                               for f in findings if f.detector not in repeated)
    if not revoking:
        _expiry_commands(ev, base, policy, decision, why, rules)
    if not revoking and not stepping:
        _accept(ev, base, profile, policy, tag)
    _remember(base, ev)
    return decision


def _accept(ev: EnrichedEvent, base: Baseline, profile: UserProfile | None, policy: Policy,
            tag: int) -> None:
    """A request decided without revoke or step-up: the session and the user may use it."""
    accept_network(base, ev)
    remember_ip(base, ev.network.ip)
    remember_location(base, ev)
    if base.device_token is None and ev.event.device_token is not None:
        base.device_token = ev.event.device_token
    if profile is not None:
        learn(profile, ev, tag, policy.profile)
