"""Output records: session commands, Auth0-style audit events, OCSF alerts.

Built as plain dicts with a fixed key order so that orjson writes the same
bytes for the same decision, live or in replay. Ids are content hashes of the
cause, never random: a re-delivered event maps to the same ids.
"""

from __future__ import annotations

import hashlib
from typing import Any

from detectors.model import Baseline, EnrichedEvent, Finding
from detectors.ocsf import build_alert
from detectors.timefmt import format_time


def stable_id(*parts: str) -> str:
    """A deterministic 128-bit hex id from its parts."""
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


def command_id(cause_event_id: str, command_type: str) -> str:
    """DESIGN.md: hash of the cause event id and the command type."""
    return stable_id(cause_event_id, command_type)


def detection(f: Finding) -> dict[str, Any]:
    return {"detector": f.detector, "kind": f.kind or None, "action": f.action,
            "severity": f.severity, "evidence": f.evidence}


def command(ev: EnrichedEvent, base: Baseline, kind: str, policy_version: str,
            **fields: Any) -> dict[str, Any]:
    """A session command in the DESIGN.md shape; extra fields follow the common ones."""
    e = ev.event
    return {
        "command_id": command_id(e.event_id, kind),
        "type": kind,
        "tenant": e.tenant or base.tenant,
        "session_id": e.session.id,
        "user_id": e.user_id or base.user_id,
        "issued_at": format_time(e.occurred_at),
        "cause_event_id": e.event_id,
        **fields,
        "policy_version": policy_version,
    }


def explanation(ev: EnrichedEvent, base: Baseline, policy_version: str,
                findings: list[Finding], rules: list[str]) -> dict[str, Any]:
    """Why a decision was taken: inputs, baseline vs current, policy version.

    The current user agent is the audit record's own `user_agent`; the
    baseline's initial one is listed only when it differs, so a 1 KB user
    agent appears once per record, not three times.
    """
    e, n, a = ev.event, ev.network, ev.agent
    ua = a.raw if a else None
    baseline: dict[str, Any] = {
        "initial_ip": base.initial_ip, "initial_asn": base.initial_asn,
        "initial_country": base.initial_country, "initial_city": base.initial_city,
        "last_ip": base.last_ip, "last_asn": base.last_asn,
        "created_at": format_time(base.created_at),
        "first_event_type": base.first_event_type,
    }
    if base.initial_user_agent != ua:
        baseline["initial_user_agent"] = base.initial_user_agent
    event: dict[str, Any] = {"event_id": e.event_id, "type": e.type.value, "source": e.source,
                             "occurred_at": format_time(e.occurred_at)}
    if e.truncated:
        event["truncated"] = list(e.truncated)
    return {
        "policy_version": policy_version,
        "event": event,
        "baseline": baseline,
        "current": {
            "ip": n.ip, "asn": n.asn, "asn_source": n.asn_source, "as_org": n.as_org,
            "country": n.country, "city": n.city, "private": n.private,
        },
        "detections": [detection(f) for f in findings],
        "rules": rules,
    }


_AUDIT_TYPES = {
    "revoke_session": "session_revoked",
    "set_expires_at": "session_expires_at_set",
    "set_idle_expires_at": "session_idle_expires_at_set",
    "set_cookie_mode": "session_cookie_mode_set",
}


def audit(cmd: dict[str, Any], ev: EnrichedEvent, description: str,
          why: dict[str, Any], log_type: str | None = None) -> dict[str, Any]:
    """An Auth0 log-event style record for one command (or a `w` warning about it)."""
    kind = log_type or _AUDIT_TYPES[cmd["type"]]
    return {
        "log_id": stable_id(cmd["command_id"], kind),
        "date": cmd["issued_at"],
        "type": kind,
        "description": description,
        "tenant": cmd["tenant"],
        "session_id": cmd["session_id"],
        "user_id": cmd["user_id"],
        "client_id": ev.event.client_id,
        "ip": ev.network.ip,
        "user_agent": ev.agent.raw if ev.agent else None,
        "command_id": cmd["command_id"],
        "details": why,
    }


def alert(f: Finding, ev: EnrichedEvent, base: Baseline, policy_version: str,
          cmd_id: str | None, response: str | None = None) -> dict[str, Any]:
    """An OCSF Detection Finding for one finding (built by `detectors.ocsf`).

    `response` is what was done to the session ("revoke", "step_up"); by
    default a revoke when this event's command revoked it, else none (alert).
    """
    if response is None and cmd_id is not None and base.revoked:
        response = "revoke"
    uid = stable_id(ev.event.event_id, f.detector, f.kind)
    return build_alert(f, ev, base, policy_version, uid, cmd_id, response)
