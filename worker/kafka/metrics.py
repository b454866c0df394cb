"""Prometheus metrics of the worker, served at /metrics on Faust's web port.

Counters mirror the pipeline's `Stats` (the same numbers replay prints), so
a dashboard and `summary.json` can be compared directly. Each app gets its
own registry: several apps in one process (tests) never collide.
"""

from __future__ import annotations

import contextlib
import time
from bisect import bisect_left
from collections import Counter as TallyCounter
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST as CONTENT_TYPE
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector

from worker.pipeline import Stats

__all__ = ["CONTENT_TYPE", "Metrics"]

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                    60.0, 300.0)
_SIZE_BUCKETS = (1, 5, 10, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
MAX_TENANTS = 500
"""Tenants with their own label value; later ones are counted under OTHER_TENANT, so a
stream with unbounded tenant ids cannot grow the series without limit."""
OTHER_TENANT = "_other"


class BatchHistogram(Collector):
    """A Prometheus histogram observed a batch at a time.

    `prometheus_client.Histogram.observe` takes a lock and walks the buckets
    for every value: a few microseconds per input event, which the worker
    would pay for every record it reads. Here a batch's values are counted
    into buckets with `bisect` and exposed through the public custom
    collector API, in the same text format.
    """

    def __init__(self, name: str, documentation: str, buckets: tuple[float, ...],
                 registry: CollectorRegistry) -> None:
        self.name = name
        self.documentation = documentation
        self.bounds = tuple(sorted(buckets))
        self.counts = [0] * (len(self.bounds) + 1)  # the last one is +Inf
        self.sum = 0.0
        registry.register(self)

    def observe_many(self, values: Iterable[float]) -> None:
        bounds, counts = self.bounds, self.counts
        total = self.sum  # added one by one, as Histogram does: the same float sum
        for value in values:
            counts[bisect_left(bounds, value)] += 1
            total += value
        self.sum = total

    def collect(self) -> Iterable[HistogramMetricFamily]:
        cumulative: list[tuple[str, float]] = []
        running = 0
        for bound, count in zip((*self.bounds, float("inf")), self.counts, strict=True):
            running += count
            cumulative.append(("+Inf" if bound == float("inf") else repr(bound), running))
        yield HistogramMetricFamily(self.name, self.documentation, buckets=cumulative,
                                    sum_value=self.sum)


class Metrics:
    """The worker's metric families and the bookkeeping to feed them."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        r = self.registry = registry or CollectorRegistry()
        self.events = Counter("sessionwarden_events", "Input events by outcome "
                              "(processed|duplicate|redelivered|skipped|dead)", ["outcome"],
                              registry=r)
        self.commands = Counter("sessionwarden_commands", "Session commands published, by type",
                                ["type"], registry=r)
        self.outputs = Counter("sessionwarden_output_records", "Records published, by topic",
                               ["topic"], registry=r)
        self.dlq = Counter("sessionwarden_dlq_records", "Records published to the dead-letter "
                           "topic", registry=r)
        self.internal_errors = Counter("sessionwarden_internal_errors", "Records dead-lettered "
                                       "because the pipeline raised (bugs, not bad input)",
                                       registry=r)
        self.unkeyed = Counter("sessionwarden_unkeyed_records", "Input records without a Kafka "
                               "key (their session state may be split across partitions)",
                               registry=r)
        self.batch_seconds = Histogram("sessionwarden_batch_duration_seconds", "Wall time of one "
                                       "batch: evaluate, publish, flush, store", registry=r,
                                       buckets=_LATENCY_BUCKETS)
        self.batch_size = Histogram("sessionwarden_batch_size", "Input records per batch",
                                    registry=r, buckets=_SIZE_BUCKETS)
        self.event_latency = BatchHistogram("sessionwarden_event_latency_seconds", "Kafka "
                                            "record timestamp to its outputs being delivered",
                                            _LATENCY_BUCKETS, r)
        self.lag = Gauge("sessionwarden_consumer_lag", "Records behind the high watermark, per "
                         "input partition", ["topic", "partition"], registry=r)
        self.ready = Gauge("sessionwarden_ready", "1 when partitions are assigned and tables "
                           "recovered", registry=r)
        self.findings = Counter("sessionwarden_findings", "Detector findings, by detector and "
                                "the action the policy gave them (revoke|step_up|alert)",
                                ["detector", "action"], registry=r)
        self.tenant_commands = Counter("sessionwarden_tenant_commands", "Session commands "
                                       "published, by type and tenant", ["type", "tenant"],
                                       registry=r)
        self.build_info = Gauge("sessionwarden_build_info", "1, labelled with the version and "
                                "the policy version in force", ["version", "policy_version",
                                                                "python"], registry=r)
        self.database_age = Gauge("sessionwarden_database_age_seconds", "Age of each "
                                  "enrichment database: now minus its build date",
                                  ["setting", "type", "test_data"], registry=r)
        self._seen = TallyCounter[str]()
        self._seen_commands = TallyCounter[str]()
        self._seen_findings = TallyCounter[str]()
        self._seen_tenants = TallyCounter[tuple[str, str]]()
        self._tenants: set[str] = set()

    def observe_stats(self, stats: Stats) -> None:
        """Advance the outcome and command counters to the pipeline's totals."""
        totals = {"processed": stats.events_processed - stats.duplicates - stats.redelivered,
                  "duplicate": stats.duplicates, "redelivered": stats.redelivered,
                  "skipped": stats.events_skipped, "dead": stats.dead_letters}
        for outcome, total in totals.items():
            delta = total - self._seen[outcome]
            if delta > 0:
                self.events.labels(outcome).inc(delta)
                self._seen[outcome] = total
        for kind, total in stats.commands_by_type.items():
            delta = total - self._seen_commands[kind]
            if delta > 0:
                self.commands.labels(kind).inc(delta)
                self._seen_commands[kind] = total

        for key, total in stats.findings_by_detector.items():
            delta = total - self._seen_findings[key]
            if delta > 0:
                detector, _, action = key.rpartition(":")
                self.findings.labels(detector, action).inc(delta)
                self._seen_findings[key] = total
        for pair, total in stats.commands_by_tenant.items():
            delta = total - self._seen_tenants[pair]
            if delta > 0:
                self.tenant_commands.labels(pair[0], self._tenant(pair[1])).inc(delta)
                self._seen_tenants[pair] = total

    def _tenant(self, tenant: str) -> str:
        if tenant in self._tenants:
            return tenant
        if len(self._tenants) < MAX_TENANTS:
            self._tenants.add(tenant)
            return tenant
        return OTHER_TENANT

    def describe_run(self, facts: Mapping[str, Any]) -> None:
        """build_info and the database ages, from `worker.about.run_facts`.

        The age is computed at every scrape (a database is a day older
        tomorrow without a restart); an unknown build date exports no series.
        """
        self.build_info.labels(str(facts.get("version")), str(facts.get("policy_version")),
                               str(facts.get("python"))).set(1)
        for db in facts.get("databases") or ():
            built = _timestamp(db.get("built"))
            if built is None:
                continue
            child = self.database_age.labels(str(db.get("setting")), str(db.get("type")),
                                             "true" if db.get("test_data") else "false")
            child.set_function(_age(built))

    def observe_outputs(self, per_topic: Mapping[str, int], dlq: int) -> None:
        for topic, n in per_topic.items():
            if n:
                self.outputs.labels(topic).inc(n)
        if dlq:
            self.dlq.inc(dlq)

    def observe_latencies(self, now: float, timestamps: Iterable[float | None]) -> None:
        self.event_latency.observe_many(max(now - ts, 0.0) for ts in timestamps if ts)

    def set_lag(self, topic: str, partition: int, lag: int) -> None:
        self.lag.labels(topic, str(partition)).set(max(lag, 0))

    def forget_partitions(self, tps: Iterable[tuple[str, int]]) -> None:
        """Drop lag series of partitions this worker no longer owns."""
        for topic, partition in tps:
            with contextlib.suppress(KeyError):
                self.lag.remove(topic, str(partition))

    def render(self) -> bytes:
        data: bytes = generate_latest(self.registry)
        return data


def _timestamp(built: object) -> float | None:
    """Epoch seconds of a build date ("2026-02-04"), or None."""
    if not isinstance(built, str):
        return None
    try:
        return datetime.strptime(built[:10], "%Y-%m-%d").replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


def _age(built: float) -> Callable[[], float]:
    return lambda: max(time.time() - built, 0.0)
