"""The live view's metrics: findings, commands per tenant, build_info, database age."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from worker.kafka.metrics import (
    _LATENCY_BUCKETS,
    MAX_TENANTS,
    OTHER_TENANT,
    BatchHistogram,
    Metrics,
)
from worker.pipeline import Stats


def samples(m: Metrics, name: str) -> dict[tuple[tuple[str, str], ...], float]:
    out = {}
    for family in text_string_to_metric_families(m.render().decode()):
        for s in family.samples:
            if s.name == name:
                out[tuple(sorted(s.labels.items()))] = s.value
    return out


def test_findings_and_tenant_commands_follow_the_stats_by_deltas() -> None:
    m = Metrics()
    stats = Stats()
    stats.findings_by_detector.update({"asn_binding:revoke": 2, "ip_binding:alert": 5})
    stats.commands_by_tenant.update({("revoke_session", "acme"): 2,
                                     ("require_reauthentication", "globex"): 1})
    m.observe_stats(stats)
    stats.findings_by_detector["asn_binding:revoke"] += 1
    stats.commands_by_tenant["revoke_session", "acme"] += 1
    m.observe_stats(stats)
    m.observe_stats(stats)  # no change, no double count
    assert samples(m, "sessionwarden_findings_total") == {
        (("action", "revoke"), ("detector", "asn_binding")): 3.0,
        (("action", "alert"), ("detector", "ip_binding")): 5.0}
    assert samples(m, "sessionwarden_tenant_commands_total") == {
        (("tenant", "acme"), ("type", "revoke_session")): 3.0,
        (("tenant", "globex"), ("type", "require_reauthentication")): 1.0}


def test_tenant_label_values_are_bounded() -> None:
    m = Metrics()
    stats = Stats()
    for i in range(MAX_TENANTS + 3):
        stats.commands_by_tenant["revoke_session", f"t{i}"] = 1
    m.observe_stats(stats)
    values = samples(m, "sessionwarden_tenant_commands_total")
    assert len(values) == MAX_TENANTS + 1
    assert values[(("tenant", OTHER_TENANT), ("type", "revoke_session"))] == 3.0


def test_build_info_and_database_age() -> None:
    m = Metrics()
    m.describe_run({"version": "1.2.3", "python": "3.11.7", "policy_version": "sha256:ab",
                    "databases": [
                        {"setting": "city_db", "type": "GeoIP2-City", "built": "2026-02-04",
                         "test_data": True},
                        {"setting": "asn_db", "type": "GeoLite2-ASN", "built": None,
                         "test_data": False}]})
    assert samples(m, "sessionwarden_build_info") == {
        (("policy_version", "sha256:ab"), ("python", "3.11.7"), ("version", "1.2.3")): 1.0}
    ages = samples(m, "sessionwarden_database_age_seconds")
    assert list(ages) == [(("setting", "city_db"), ("test_data", "true"),
                           ("type", "GeoIP2-City"))]
    expected = time.time() - 1770163200  # 2026-02-04T00:00:00Z
    assert abs(next(iter(ages.values())) - expected) < 60


def test_batch_histogram_exposes_what_a_prometheus_histogram_would() -> None:
    """Observed a batch at a time, the same bucket, count and sum lines as `Histogram`."""
    values = [0.0, 0.005, 0.0051, 0.01, 0.3, 1.0, 2.4999, 59.9, 300.0, 301.0, 4000.0]
    values += [i / 97 for i in range(500)]
    plain, batched = CollectorRegistry(), CollectorRegistry()
    reference = Histogram("lat_seconds", "doc", registry=plain, buckets=_LATENCY_BUCKETS)
    for value in values:
        reference.observe(value)
    ours = BatchHistogram("lat_seconds", "doc", _LATENCY_BUCKETS, batched)
    ours.observe_many(values[:7])
    ours.observe_many(values[7:])
    expected = [line for line in generate_latest(plain).decode().splitlines()
                if "_created" not in line]
    assert generate_latest(batched).decode().splitlines() == expected
    assert f"lat_seconds_count {float(len(values))}" in expected
