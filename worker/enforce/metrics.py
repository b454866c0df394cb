"""Prometheus metrics of the enforcer (served at /metrics on its own port).

Every rail is visible: results by outcome (held, dry-run and unsupported
included), the breaker's state and the held backlog per tenant, time spent
waiting for the revocation rate limit, and the IdP side (calls by status,
retries, 429s). One registry per instance, so tests can run several.
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

__all__ = ["CONTENT_TYPE", "EnforceMetrics"]

_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class EnforceMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.results = Counter("sessionwarden_enforce_results", "Results published, by tenant, "
                               "command type and outcome", ["tenant", "type", "outcome"],
                               registry=r)
        self.duplicates = Counter("sessionwarden_enforce_duplicates", "Re-delivered or repeated "
                                  "command ids that were not applied again", registry=r)
        self.in_doubt = Counter("sessionwarden_enforce_in_doubt", "Commands found with an intent "
                                "but no result after a restart (probed before any re-send)",
                                registry=r)
        self.controls = Counter("sessionwarden_enforce_operator_actions", "Operator release/"
                                "discard records, by action and whether they matched a held "
                                "command", ["action", "matched"], registry=r)
        self.idp_calls = Counter("sessionwarden_enforce_idp_requests", "HTTP exchanges with IdPs "
                                 "by target kind and status (none = no response)",
                                 ["kind", "status"], registry=r)
        self.idp_retries = Counter("sessionwarden_enforce_idp_retries", "Retried IdP calls",
                                   ["kind"], registry=r)
        self.idp_throttled = Counter("sessionwarden_enforce_idp_throttled", "429 answers",
                                     ["kind"], registry=r)
        self.apply_seconds = Histogram("sessionwarden_enforce_apply_seconds", "Time to apply one "
                                       "command at the IdP, retries included", ["kind"],
                                       registry=r, buckets=_BUCKETS)
        self.latency = Histogram("sessionwarden_enforce_command_latency_seconds", "Command record "
                                 "timestamp to its result being delivered", registry=r,
                                 buckets=_BUCKETS)
        self.ratelimit_wait = Counter("sessionwarden_enforce_ratelimit_wait_seconds", "Seconds "
                                      "revokes waited for the tenant's rate limit", ["tenant"],
                                      registry=r)
        self.breaker_open = Gauge("sessionwarden_enforce_breaker_open", "1 while the tenant's "
                                  "breaker holds revokes", ["tenant"], registry=r)
        self.breaker_trips = Counter("sessionwarden_enforce_breaker_trips", "Times a tenant's "
                                     "breaker opened", ["tenant"], registry=r)
        self.held = Gauge("sessionwarden_enforce_held_commands", "Commands held by the breaker, "
                          "awaiting an operator", ["tenant"], registry=r)
        self.state_entries = Gauge("sessionwarden_enforce_state_entries", "Command states kept "
                                   "in memory (owned partitions)", registry=r)
        self.ready = Gauge("sessionwarden_enforce_ready", "1 once partitions are assigned and "
                           "their state restored", registry=r)

    def render(self) -> bytes:
        data: bytes = generate_latest(self.registry)
        return data
