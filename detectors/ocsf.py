"""OCSF Detection Findings (class 2004) for session-risk findings.

The alert shape is fixed by the OCSF schema, not by us: every key below is
an attribute of the class or of the object it sits in, in the version and
profiles the record declares (`tests/ocsf.py` checks every alert of the
test suite against the compiled schema). Decisions worth knowing:

- OCSF 1.8.0, profiles `datetime` (the `*_dt` twins of the timestamps) and
  `security_control` (`action`, `disposition`, `policy`: what was done to the
  session). Every attribute used also exists in 1.5.0-1.7.0.
- The user, the session and the request are *evidence* of a finding, so they
  live in `evidences[]`: the current request (actor with user and session,
  `src_endpoint` with geo and AS, `http_request.user_agent`, the detector's
  raw evidence as `data`) and the session's baseline. Class-level `actor` and
  `device` belong to the `host` profile, which describes a host that is not
  there. The session is also the finding's resource (`resources[].uid`), so it
  has a typed observable (Resource UID) and a SIEM can pivot on it.
- Titles, ATT&CK mappings, runbooks, confidence and observables come from
  `detectors.alert_catalog`; severity from the finding, confidence from its
  evidence.
- Unknown values are omitted, never null. The dict's key order is fixed, so
  orjson writes the same bytes for the same decision in replay and live.

Spec: OCSF schema https://schema.ocsf.io/1.8.0/classes/detection_finding and
the `ocsf/ocsf-schema` repository, tag 1.8.0.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from detectors.alert_catalog import (
    ATTACK_VERSION,
    BASELINE_IP,
    BASELINE_USER_AGENT,
    COUNTRY,
    IP,
    SESSION,
    USER,
    USER_AGENT,
    Attack,
    info_for,
    render_title,
)
from detectors.model import Baseline, EnrichedEvent, Finding
from detectors.timefmt import format_time

OCSF_VERSION = "1.8.0"
PROFILES = ("datetime", "security_control")
PRODUCT = {"name": "sessionwarden", "vendor_name": "sessionwarden", "version": "0.1.0"}

SEVERITY = {"informational": (1, "Informational"), "low": (2, "Low"), "medium": (3, "Medium"),
            "high": (4, "High"), "critical": (5, "Critical"), "fatal": (6, "Fatal")}
CONFIDENCE = {"unknown": (0, "Unknown"), "low": (1, "Low"), "medium": (2, "Medium"),
              "high": (3, "High")}
RESPONSES: dict[str | None, tuple[tuple[int, str], tuple[int, str], str]] = {
    # response -> (action, disposition, what the message says)
    "revoke": ((2, "Denied"), (24, "Access Revoked"), "session revoked"),
    "step_up": ((2, "Denied"), (23, "Challenge"), "re-authentication required"),
    None: ((3, "Observed"), (15, "Detected"), "alert only"),
}

# Observable type ids and captions (OCSF dictionary, stable since 1.4.0).
_USER_UID, _RESOURCE_UID, _IP, _COUNTRY, _USER_AGENT = (
    (31, "User Object: uid"), (10, "Resource UID"), (2, "IP Address"), (14, "Country"),
    (16, "HTTP User-Agent"))


def _time(ms: int) -> dict[str, Any]:
    return {"time": ms, "time_dt": format_time(ms)}


def _endpoint(ip: str, asn: int | None, as_org: str | None, country: str | None,
              city: str | None, lat: float | None, lon: float | None) -> dict[str, Any]:
    endpoint: dict[str, Any] = {"ip": ip}
    if country or city:  # location needs one of city, country, postal_code, region
        location: dict[str, Any] = {}
        if city:
            location["city"] = city
        if country:
            location["country"] = country
        if lat is not None and lon is not None:
            location["lat"], location["long"] = float(lat), float(lon)
        endpoint["location"] = location
    if asn is not None or as_org:
        system: dict[str, Any] = {}
        if asn is not None:
            system["number"] = asn
        if as_org:
            system["name"] = as_org
        endpoint["autonomous_system"] = system
    return endpoint


def _attack(a: Attack) -> dict[str, Any]:
    out: dict[str, Any] = {
        "tactic": {"uid": a.tactic[0], "name": a.tactic[1]},
        "technique": {"uid": a.technique[0], "name": a.technique[1]},
    }
    if a.sub_technique is not None:
        out["sub_technique"] = {"uid": a.sub_technique[0], "name": a.sub_technique[1],
                                "src_url": a.url}
    else:
        out["technique"]["src_url"] = a.url
    out["version"] = ATTACK_VERSION
    return out


def _observable(name: str, kind: tuple[int, str], value: str) -> dict[str, Any]:
    return {"name": name, "type_id": kind[0], "type": kind[1], "value": value}


def _observables(roles: tuple[str, ...], user: str | None, session: str,
                 current: dict[str, Any], baseline: dict[str, Any], ua: str | None,
                 initial_ua: str | None) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if USER in roles and user:
        out.append(_observable("evidences.actor.user.uid", _USER_UID, user))
    if SESSION in roles:
        out.append(_observable("resources.uid", _RESOURCE_UID, session))
    if IP in roles:
        out.append(_observable("evidences.src_endpoint.ip", _IP, current["ip"]))
    if BASELINE_IP in roles and baseline["ip"] != current["ip"]:
        out.append(_observable("evidences.src_endpoint.ip", _IP, baseline["ip"]))
    if COUNTRY in roles:
        countries = [e["location"]["country"] for e in (current, baseline)
                     if "country" in e.get("location", {})]
        out.extend(_observable("evidences.src_endpoint.location.country", _COUNTRY, country)
                   for country in dict.fromkeys(countries))
    if USER_AGENT in roles and ua:
        out.append(_observable("evidences.http_request.user_agent", _USER_AGENT, ua))
    if BASELINE_USER_AGENT in roles and initial_ua and initial_ua != ua:
        out.append(_observable("evidences.http_request.user_agent", _USER_AGENT, initial_ua))
    return out


def _remediation(runbook: str, attacks: tuple[Attack, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {"desc": runbook}
    if attacks:
        out["references"] = [a.url for a in attacks]
    return out


def build_alert(f: Finding, ev: EnrichedEvent, base: Baseline, policy_version: str,
                uid: str, cmd_id: str | None, response: str | None) -> dict[str, Any]:
    """The Detection Finding for one finding; `uid` is its deterministic id."""
    e, n = ev.event, ev.network
    info = info_for(f.detector, f.kind)
    user = e.user_id or base.user_id
    session = e.session.id
    tenant = e.tenant or base.tenant
    ua = ev.agent.raw if ev.agent else None
    severity = SEVERITY.get(f.severity.lower(), (99, f.severity))
    confidence = CONFIDENCE[info.confidence(f.evidence)]
    action, disposition, outcome = RESPONSES.get(response, RESPONSES[None])
    title = render_title(info, f.evidence, user=user, session=session, detector=f.detector,
                         kind=f.kind)
    now = e.occurred_at

    current = _endpoint(n.ip, n.asn, n.as_org, n.country, n.city, n.latitude, n.longitude)
    baseline = _endpoint(base.initial_ip, base.initial_asn, None, base.initial_country,
                         base.initial_city, base.initial_latitude, base.initial_longitude)
    actor: dict[str, Any] = {}
    if user:
        actor["user"] = {"uid": user}
    actor["session"] = {"uid": session, "created_time": base.created_at,
                        "created_time_dt": format_time(base.created_at)}
    if e.client_id:
        actor["app_uid"] = e.client_id
    request: dict[str, Any] = {"name": "current request", "actor": actor,
                               "src_endpoint": current}
    if ua:
        request["http_request"] = {"user_agent": ua}
    request["data"] = f.evidence
    before: dict[str, Any] = {"name": "session baseline", "src_endpoint": baseline}
    if base.initial_user_agent:
        before["http_request"] = {"user_agent": base.initial_user_agent}

    metadata: dict[str, Any] = {
        "version": OCSF_VERSION, "profiles": list(PROFILES), "product": PRODUCT, "uid": uid,
        "correlation_uid": session, "event_code": f.detector,
        "original_time": format_time(now)}
    if tenant:
        metadata["tenant_uid"] = tenant
    finding: dict[str, Any] = {
        "uid": uid, "title": title, "desc": f.reason, "types": list(info.types),
        "analytic": {"uid": f"{f.detector}/{f.kind}" if f.kind else f.detector,
                     "name": info.name, "type_id": 1, "type": "Rule"},
    }
    if info.attacks:
        finding["attacks"] = [_attack(a) for a in info.attacks]
    finding.update({
        "created_time": now, "created_time_dt": format_time(now),
        "first_seen_time": base.created_at, "first_seen_time_dt": format_time(base.created_at),
        "last_seen_time": now, "last_seen_time_dt": format_time(now),
        "data_sources": [e.source],
        "related_events": [{"uid": e.event_id, "desc": f"{e.source} {e.type.value} event"}],
    })
    unmapped: dict[str, Any] = {"detector": f.detector}
    if f.kind:
        unmapped["kind"] = f.kind
    unmapped["finding_action"] = f.action
    if cmd_id is not None:
        unmapped["command_id"] = cmd_id
    unmapped["event_source"] = e.source

    return {
        "class_uid": 2004, "class_name": "Detection Finding",
        "category_uid": 2, "category_name": "Findings",
        "activity_id": 1, "activity_name": "Create",
        "type_uid": 200401, "type_name": "Detection Finding: Create",
        **_time(now),
        "timezone_offset": 0,
        "severity_id": severity[0], "severity": severity[1],
        "confidence_id": confidence[0], "confidence": confidence[1],
        "status_id": 1, "status": "New",
        "is_alert": True,
        "action_id": action[0], "action": action[1],
        "disposition_id": disposition[0], "disposition": disposition[1],
        "message": f"{title}: {f.reason} ({outcome})",
        "metadata": metadata,
        "finding_info": finding,
        "policy": {"name": "sessionwarden session policy", "uid": policy_version,
                   "version": policy_version, "is_applied": True},
        "resources": [{"uid": session, "type": "IdP session"}],
        "evidences": [request, before],
        "observables": _observables(info.observables, user, session, current, baseline, ua,
                                    base.initial_user_agent),
        "remediation": _remediation(info.runbook, info.attacks),
        "unmapped": {"sessionwarden": unmapped},
    }


def alert_session(record: Mapping[str, Any]) -> str | None:
    """The session id of an alert (its Kafka key): the session of the current request."""
    evidences = record.get("evidences")
    first = evidences[0] if isinstance(evidences, list) and evidences else None
    actor = first.get("actor") if isinstance(first, dict) else None
    session = actor.get("session") if isinstance(actor, dict) else None
    sid = session.get("uid") if isinstance(session, dict) else None
    return sid if isinstance(sid, str) and sid else None
