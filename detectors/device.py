"""Device detectors beyond the user agent: automation clients, IdP device tokens, IdP risk.

- `automation_client`: a session that began in a person's browser continues
  from curl, python-requests, Go-http-client, a headless browser... That is
  what a stolen cookie looks like when a script replays it (or an
  infostealer on the user's own machine), whatever the network.
- `device_token_change`: the IdP's own device identifier (Okta's `dtHash`)
  changed inside one session: the cookie moved to another device.
- `idp_risk`: the IdP rated the request high risk (Auth0 Adaptive MFA's
  `riskAssessment`, Okta's `debugData.risk`); we pass its verdict on.
"""

from __future__ import annotations

from typing import Any

from detectors.model import Baseline, EnrichedEvent, Finding
from detectors.policy import Policy


def _finding(name: str, policy: Policy, severity: str, evidence: dict[str, Any],
             kind: str = "", action: str | None = None) -> Finding | None:
    rule = policy.detector(name)
    chosen = action or rule.action
    if chosen == "off":
        return None
    return Finding(name, chosen, rule.reason, severity, evidence,
                   rule.preserve_refresh_tokens, kind)


def automation_client(ev: EnrichedEvent, base: Baseline, policy: Policy) -> Finding | None:
    agent = ev.agent
    if agent is None or not agent.automation or base.initial_automation \
            or base.initial_user_agent is None:
        return None  # a session that started as a script may go on as one
    return _finding("automation_client", policy, "high", {
        "initial_user_agent": base.initial_user_agent,
        "current_user_agent": agent.raw,
        "client": agent.family,
    })


def device_token_change(ev: EnrichedEvent, base: Baseline, policy: Policy) -> Finding | None:
    token = ev.event.device_token
    if token is None or base.device_token is None or token == base.device_token:
        return None
    return _finding("device_token_change", policy, "high", {
        "initial_device_token": base.device_token, "current_device_token": token,
        "source": ev.event.source})


def idp_risk(ev: EnrichedEvent, first: bool, policy: Policy) -> Finding | None:
    e = ev.event
    if e.idp_risk != "high":
        return None
    # At a session's first request the IdP already acted on its own verdict.
    action = "alert" if first and policy.detector("idp_risk").action != "off" else None
    return _finding("idp_risk", policy, "medium", {
        "level": e.idp_risk, "reasons": list(e.idp_risk_reasons), "source": e.source},
        action=action)
