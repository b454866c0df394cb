"""User-agent drift: a real device change versus an ordinary browser update.

A change of browser family or OS family means another device (or a stolen
cookie replayed from one); an upgrade of the same browser is everyday life; a
major *downgrade* of the same browser is unusual enough to be suspicious.
"""

from __future__ import annotations

from detectors.model import Agent, Baseline, EnrichedEvent, Finding


def _describe(family: str | None, os_family: str | None,
              version: tuple[int, int, int] | None) -> dict[str, object]:
    return {"browser": family, "os": os_family,
            "version": ".".join(map(str, version)) if version else None}


def classify(base: Baseline, agent: Agent) -> str | None:
    """device_change, downgrade, or None (same device, possibly updated)."""
    if base.initial_user_agent is None:
        return None
    if agent.family != base.initial_agent_family or agent.os_family != base.initial_os_family:
        return "device_change"
    if not agent.known and agent.raw != base.initial_user_agent:
        # Neither side could be parsed and the raw strings differ: we cannot
        # call it an update, so it counts as another client.
        return "device_change"
    last = base.last_agent_version
    if last is not None and agent.major is not None and agent.major < last[0]:
        return "downgrade"
    return None


def ua_drift(ev: EnrichedEvent, base: Baseline, action: str, downgrade_action: str,
             reason: str, preserve: bool) -> Finding | None:
    """Compare the current user agent with the session's initial device."""
    agent = ev.agent
    if agent is None:
        return None  # e.g. Keycloak events carry no user agent
    kind = classify(base, agent)
    if kind is None:
        return None
    chosen = action if kind == "device_change" else downgrade_action
    if chosen == "off":
        return None
    if chosen == "alert" and agent.raw == base.last_user_agent:
        return None  # already alerted on this user agent
    severity = "high" if kind == "device_change" else "medium"
    evidence: dict[str, object] = {
        "initial_user_agent": base.initial_user_agent,
        "current_user_agent": agent.raw,
        "initial": {"browser": base.initial_agent_family, "os": base.initial_os_family},
        "last_version": ".".join(map(str, base.last_agent_version))
        if base.last_agent_version else None,
        "current": _describe(agent.family, agent.os_family, agent.version),
    }
    return Finding("ua_drift", chosen, reason, severity, evidence, preserve, kind)
