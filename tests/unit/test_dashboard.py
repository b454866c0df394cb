"""The Grafana dashboard, validated against Grafana's dashboard schema and our metrics.

No Grafana server can be installed here (no Debian package, no registry ships
one), so the dashboard is checked against Grafana's own schema models, the
`grafana-foundation-sdk` generated from the dashboard and panel schemas of
Grafana 11.6 (the version docker-compose runs): every key of the file must
survive a round trip through those models, and every panel type must be a
schema-known panel. The queries must name metrics the worker exports, and the
provisioning files must point where docker-compose mounts them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml

from worker.kafka.metrics import Metrics
from worker.pipeline import Stats

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "deploy" / "grafana" / "dashboards" / "sessionwarden.json"
ENFORCER_METRICS = {"sessionwarden_enforce_breaker_open"}
"""Exported by `sessionwarden enforce` (issue 10), which is not on this branch's worker."""


def load() -> dict[str, Any]:
    return json.loads(DASHBOARD.read_text())


def lost_in_round_trip(a: Any, b: Any, path: str = "") -> list[str]:
    """Keys or values of `a` that the schema round trip `b` dropped or changed."""
    if isinstance(a, dict):
        if not isinstance(b, dict):
            return [f"{path}: {type(b).__name__}"]
        return [p for k, v in a.items()
                for p in ([f"{path}/{k} (unknown to the schema)"] if k not in b
                          else lost_in_round_trip(v, b[k], f"{path}/{k}"))]
    if isinstance(a, list):
        if not isinstance(b, list) or len(a) != len(b):
            return [f"{path}: list changed"]
        return [p for i, (x, y) in enumerate(zip(a, b, strict=True))
                for p in lost_in_round_trip(x, y, f"{path}[{i}]")]
    return [] if a == b else [f"{path}: {a!r} became {b!r}"]


def test_dashboard_validates_against_grafanas_schema_models() -> None:
    from grafana_foundation_sdk.cog.encoder import JSONEncoder  # noqa: PLC0415
    from grafana_foundation_sdk.cog.plugins import register_default_plugins  # noqa: PLC0415
    from grafana_foundation_sdk.cog.runtime import panelcfg_config  # noqa: PLC0415
    from grafana_foundation_sdk.models.dashboard import Dashboard  # noqa: PLC0415

    register_default_plugins()
    doc = load()
    back = json.loads(json.dumps(Dashboard.from_json(doc), cls=JSONEncoder))
    assert lost_in_round_trip(doc, back) == []
    kinds = {p["type"] for p in doc["panels"]} - {"row"}
    assert all(panelcfg_config(kind) is not None for kind in kinds), kinds
    assert doc["schemaVersion"] == back["schemaVersion"] == 41
    # a broken file would also be caught: an unknown key does not survive
    broken = {**doc, "panels": [{**doc["panels"][1], "queries": []}]}
    assert lost_in_round_trip(
        broken, json.loads(json.dumps(Dashboard.from_json(broken), cls=JSONEncoder))) != []


def test_every_query_names_a_metric_the_worker_exports() -> None:
    m = Metrics()
    stats = Stats(events_processed=1)
    stats.findings_by_detector["asn_binding:revoke"] = 1
    stats.commands_by_tenant["revoke_session", "acme"] = 1
    m.observe_stats(stats)
    m.describe_run({"version": "1", "python": "3", "policy_version": "p",
                    "databases": [{"setting": "asn_db", "type": "t", "built": "2026-01-01"}]})
    m.set_lag("in", 0, 1)
    m.observe_latencies(1.0, [0.5])
    m.dlq.inc(0)
    m.internal_errors.inc(0)
    exported = {line.split("{")[0].split(" ")[0] for line in m.render().decode().splitlines()
                if line and not line.startswith("#")}
    used = {name for p in load()["panels"] for t in p.get("targets", ())
            for name in re.findall(r"sessionwarden_[a-z_]+", t["expr"])}
    used |= set(re.findall(r"sessionwarden_[a-z_]+", json.dumps(load()["templating"])))
    assert used - ENFORCER_METRICS <= exported, used - exported


def test_dashboard_shows_what_the_issue_asks_for() -> None:
    text = {p["title"]: json.dumps(p.get("targets", [])) for p in load()["panels"]}
    wanted = {"Throughput by outcome": "sessionwarden_events_total",
              "Consumer lag by partition": "sessionwarden_consumer_lag",
              "Event latency": "sessionwarden_event_latency_seconds_bucket",
              "Revokes and step-ups per tenant": "sessionwarden_tenant_commands_total",
              "Dead-letter rate": "sessionwarden_dlq_records_total",
              "Enforcement breaker per tenant": "sessionwarden_enforce_breaker_open",
              "Enrichment database age": "sessionwarden_database_age_seconds",
              "Build and policy in force": "sessionwarden_build_info"}
    for title, metric in wanted.items():
        assert metric in text[title], title


def test_provisioning_matches_docker_compose() -> None:
    compose = yaml.safe_load((REPO / "docker-compose.yml").read_text())
    grafana = compose["services"]["grafana"]["volumes"]
    assert "./deploy/grafana/dashboards:/var/lib/grafana/dashboards:ro" in grafana
    assert "./deploy/grafana/provisioning:/etc/grafana/provisioning:ro" in grafana
    provider = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/dashboards/sessionwarden.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    source = yaml.safe_load(
        (REPO / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text())
    uid = source["datasources"][0]["uid"]
    assert {p["datasource"]["uid"] for p in load()["panels"] if "datasource" in p} == {uid}
    prometheus = yaml.safe_load((REPO / "deploy/prometheus/prometheus.yml").read_text())
    targets = [t for job in prometheus["scrape_configs"]
               for c in job["static_configs"] for t in c["targets"]]
    worker = compose["services"]["worker"]["environment"]
    assert f"worker:{worker['SESSIONWARDEN_WEB_PORT']}" in targets
    assert worker["SESSIONWARDEN_WEB_HOST"] == "0.0.0.0"
