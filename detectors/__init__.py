"""The pure decision core of sessionwarden: no I/O, no clock, no randomness."""

from detectors.engine import evaluate, new_baseline
from detectors.model import (
    Agent,
    Baseline,
    Decision,
    EnrichedEvent,
    EventType,
    Finding,
    Network,
    SessionEvent,
    SessionInfo,
)
from detectors.policy import DEFAULT_POLICY, Policy, PolicyError, policy_from_mapping

__all__ = [
    "DEFAULT_POLICY",
    "Agent",
    "Baseline",
    "Decision",
    "EnrichedEvent",
    "EventType",
    "Finding",
    "Network",
    "Policy",
    "PolicyError",
    "SessionEvent",
    "SessionInfo",
    "evaluate",
    "new_baseline",
    "policy_from_mapping",
]
