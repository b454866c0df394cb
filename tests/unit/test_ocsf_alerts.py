"""Alerts are OCSF Detection Findings that validate against the real schema (issue 12).

Why: SOC pipelines should take `session-alerts` without a custom parser,
which they can only do if every alert is what the OCSF version it declares
says a Detection Finding is. Every alert of the demo replay and of every
real IdP sample is checked with `tests/ocsf.py` against the compiled schema
in the shared folder, and the validator itself is shown to catch each kind
of mistake (a validator that cannot fail would prove nothing).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from detectors import DEFAULT_POLICY, Finding, evaluate
from detectors.alert_catalog import CATALOG, GENERIC, info_for
from detectors.ocsf import OCSF_VERSION, PROFILES
from detectors.records import alert
from tests.factories import FIREFOX_WIN, event
from tests.ocsf import Schema, load_schema, validate
from tests.shared_data import shared_path
from worker.enrich import Enricher
from worker.replay import replay

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "data" / "demo" / "events.jsonl"
SAMPLES = REPO / "tests" / "fixtures" / "idp_samples"
SAMPLE_FILES = ("auth0.jsonl", "okta.jsonl", "keycloak.jsonl", "keycloak.log")


@pytest.fixture(scope="module")
def schema() -> Schema:
    return load_schema(OCSF_VERSION)


def replay_alerts(path: Path, out: Path, enricher: Enricher) -> list[dict[str, Any]]:
    replay([path], out, DEFAULT_POLICY, enricher)
    return [orjson.loads(line) for line in (out / "alerts.jsonl").read_bytes().splitlines()]


@pytest.fixture(scope="module")
def demo_alerts(tmp_path_factory: pytest.TempPathFactory,
                enricher: Enricher) -> list[dict[str, Any]]:
    return replay_alerts(DEMO, tmp_path_factory.mktemp("demo"), enricher)


def errors_of(alerts: list[dict[str, Any]], schema: Schema) -> dict[str, list[str]]:
    found = {a["finding_info"]["uid"]: validate(a, schema).errors for a in alerts}
    return {uid: errs for uid, errs in found.items() if errs}


# --- every alert we emit validates -------------------------------------------------------


def test_every_demo_alert_is_a_valid_detection_finding(
        demo_alerts: list[dict[str, Any]], schema: Schema) -> None:
    assert len(demo_alerts) > 100
    assert errors_of(demo_alerts, schema) == {}
    # the demo exercises every detector the catalog describes
    analytics = {a["finding_info"]["analytic"]["uid"] for a in demo_alerts}
    assert analytics == {"asn_binding", "ip_binding", "ua_drift/device_change",
                         "ua_drift/downgrade", "anonymous_network", "impossible_travel"}
    assert {a["disposition"] for a in demo_alerts} == {"Access Revoked", "Detected"}


@pytest.mark.parametrize("name", SAMPLE_FILES)
@pytest.mark.parametrize("where", ["fixtures", "shared"])
def test_every_idp_sample_alert_validates(where: str, name: str, tmp_path: Path,
                                          enricher: Enricher, schema: Schema) -> None:
    folder = SAMPLES if where == "fixtures" else shared_path("data", "idp_samples_more")
    alerts = replay_alerts(folder / name, tmp_path, enricher)
    assert errors_of(alerts, schema) == {}
    for a in alerts:
        assert a["finding_info"]["data_sources"] == [name.split(".", maxsplit=1)[0]]


def test_the_idp_samples_do_produce_alerts(tmp_path: Path, enricher: Enricher) -> None:
    """Guards the test above against passing on nothing: the real samples alert."""
    alerts = [a for name in ("auth0.jsonl", "okta.jsonl")
              for a in replay_alerts(SAMPLES / name, tmp_path / name, enricher)]
    assert {a["finding_info"]["data_sources"][0] for a in alerts} == {"auth0", "okta"}


@pytest.mark.parametrize("version", ["1.5.0", "1.6.0", "1.7.0"])
def test_alerts_use_nothing_newer_than_ocsf_1_5(version: str,
                                                 demo_alerts: list[dict[str, Any]]) -> None:
    """The declared version is 1.8.0; relabelled, the same records fit 1.5.0-1.7.0 too."""
    older = load_schema(version)
    relabelled = [copy.deepcopy(a) for a in demo_alerts[:40]]
    for a in relabelled:
        a["metadata"]["version"] = version
    assert errors_of(relabelled, older) == {}


def test_declared_profiles_are_the_ones_used(demo_alerts: list[dict[str, Any]],
                                            schema: Schema) -> None:
    assert tuple(demo_alerts[0]["metadata"]["profiles"]) == PROFILES
    for profile in PROFILES:  # dropping a declared profile makes the alert invalid
        record = copy.deepcopy(demo_alerts[0])
        record["metadata"]["profiles"].remove(profile)
        assert any(f"needs profile ['{profile}']" in e or profile in e
                   for e in validate(record, schema).errors), profile


# --- what the alerts say -------------------------------------------------------------------


def by_analytic(alerts: list[dict[str, Any]], uid: str) -> list[dict[str, Any]]:
    return [a for a in alerts if a["finding_info"]["analytic"]["uid"] == uid]


def test_asn_change_alert_names_user_networks_and_attack(
        demo_alerts: list[dict[str, Any]]) -> None:
    a = by_analytic(demo_alerts, "asn_binding")[0]
    data = a["evidences"][0]["data"]
    user = a["evidences"][0]["actor"]["user"]["uid"]
    assert a["finding_info"]["title"] == (
        f"Session of {user} moved from AS{data['initial_asn']} to AS{data['current_asn']} "
        f"({data['current_ip']})")
    techniques = {(x.get("sub_technique") or x["technique"])["uid"]
                  for x in a["finding_info"]["attacks"]}
    assert techniques == {"T1539", "T1550.004"}
    assert (a["severity_id"], a["severity"]) == (4, "High")
    assert a["confidence"] == ("Medium" if data["asn_source"] == "pyasn" else "High")
    assert a["evidences"][1]["name"] == "session baseline"
    assert a["evidences"][1]["src_endpoint"]["ip"] == data["initial_ip"]
    observed = {(o["name"], o["type_id"], o["value"]) for o in a["observables"]}
    assert ("evidences.actor.user.uid", 31, user) in observed  # User Object: uid, not name
    assert ("resources.uid", 10, a["resources"][0]["uid"]) in observed
    assert ("evidences.src_endpoint.ip", 2, data["initial_ip"]) in observed
    assert ("evidences.src_endpoint.ip", 2, data["current_ip"]) in observed


def test_device_change_title_names_both_devices(demo_alerts: list[dict[str, Any]]) -> None:
    a = by_analytic(demo_alerts, "ua_drift/device_change")[0]
    data = a["evidences"][0]["data"]
    title = a["finding_info"]["title"]
    for side in ("initial", "current"):
        assert f"{data[side]['browser']} on {data[side]['os']}" in title
    types = {o["type_id"] for o in a["observables"]}
    assert 16 in types  # HTTP User-Agent


def test_ip_change_in_the_same_network_is_low_confidence(
        demo_alerts: list[dict[str, Any]]) -> None:
    alerts = by_analytic(demo_alerts, "ip_binding")
    same = [a for a in alerts if a["evidences"][0]["data"]["same_asn"]]
    other = [a for a in alerts if not a["evidences"][0]["data"]["same_asn"]
             and a["evidences"][0]["data"]["current_asn"] is not None
             and a["evidences"][0]["data"]["initial_asn"] is not None]
    assert same and other
    assert {(a["severity"], a["confidence"]) for a in same} == {("Low", "Low")}
    assert {a["confidence"] for a in other} == {"Medium"}


def test_every_catalog_entry_has_a_runbook_with_false_positives() -> None:
    for key, info in [*CATALOG.items(), ("generic", GENERIC)]:
        assert "Check:" in info.runbook and "False positives:" in info.runbook, key
        assert len(info.runbook) < 700, key  # short: an analyst reads it in the alert


def test_an_unknown_detector_gets_a_valid_generic_alert(schema: Schema) -> None:
    """A detector added later (issue 9) without a catalog entry still alerts validly."""
    first = evaluate(event(1), None, DEFAULT_POLICY)
    ev = event(2, ip="216.160.83.56", asn=209, ua=FIREFOX_WIN)
    f = Finding("automation_client", "alert", "Automation client", "unusual",
                {"client": "curl/8.4", "confidence": "high"})
    record = alert(f, ev, first.baseline, DEFAULT_POLICY.version, None)
    assert validate(record, schema).errors == []
    assert info_for("automation_client") is GENERIC
    assert record["finding_info"]["title"] == "Session of auth0|42: automation_client"
    assert (record["severity_id"], record["severity"]) == (99, "unusual")
    assert record["confidence"] == "High"
    assert "attacks" not in record["finding_info"]


def test_a_template_that_does_not_fit_the_evidence_falls_back(schema: Schema) -> None:
    first = evaluate(event(1), None, DEFAULT_POLICY)
    f = Finding("asn_binding", "revoke", "Invalid network change", "high", {"other": 1})
    record = alert(f, event(2, ip="216.160.83.56", asn=209), first.baseline,
                   DEFAULT_POLICY.version, "c1", response="revoke")
    assert record["finding_info"]["title"] == "Session of auth0|42: asn_binding"
    assert record["disposition"] == "Access Revoked"
    assert validate(record, schema).errors == []


def test_step_up_response_is_a_challenge(schema: Schema) -> None:
    first = evaluate(event(1), None, DEFAULT_POLICY)
    f = Finding("ua_drift", "step_up", "Device change", "high",
                {"initial": {"browser": "Chrome", "os": "Mac OS X"},
                 "current": {"browser": "Firefox", "os": "Windows"}}, kind="device_change")
    record = alert(f, event(2, ua=FIREFOX_WIN), first.baseline, DEFAULT_POLICY.version, "c2",
                   response="step_up")
    assert (record["action"], record["disposition"]) == ("Denied", "Challenge")
    assert record["finding_info"]["title"] == (
        "Session of auth0|42 switched device from Chrome on Mac OS X to Firefox on Windows")
    assert validate(record, schema).errors == []


# --- the validator catches what it must ------------------------------------------------


def mutated(base: dict[str, Any], change: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    record = copy.deepcopy(base)
    change(record)
    return record


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(record: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = record
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        node[last] = value
    return change


def _drop(path: str) -> Callable[[dict[str, Any]], None]:
    def change(record: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node: Any = record
        for p in parents:
            node = node[int(p)] if isinstance(node, list) else node[p]
        del node[last]
    return change


CASES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "unknown top-level attribute": (_set("src_endpoint", {"ip": "1.2.3.4"}),
                                    "src_endpoint: unknown attribute"),
    "unknown nested attribute": (_set("evidences.0.actor.session.device", "x"),
                                 "evidences[0].actor.session.device: unknown attribute"),
    "profile not declared": (_set("metadata.profiles", ["security_control"]),
                             "time_dt: unknown attribute (needs profile ['datetime']"),
    "host-profile actor": (_set("actor", {"user": {"uid": "u"}}),
                           "actor: unknown attribute (needs profile ['host']"),
    "unknown profile": (_set("metadata.profiles", ["datetime", "security_control", "nope"]),
                        "unknown profile 'nope'"),
    "required missing": (_drop("finding_info.uid"), "finding_info.uid: required attribute"),
    "required in array element": (_drop("observables.0.type_id"),
                                  "observables[0].type_id: required attribute missing"),
    "wrong scalar type": (_set("time", "2026-11-01"), "time: '2026-11-01' is not a timestamp_t"),
    "bool is not an integer": (_set("severity_id", True), "severity_id: True is not a integer_t"),
    "int is not a float": (_set("evidences.0.src_endpoint.location",
                                {"country": "SE", "lat": 58, "long": 15.6}),
                           "is not a float_t"),
    "bad ip": (_set("evidences.0.src_endpoint.ip", "999.1.1.1"), "does not match ip_t"),
    "bad datetime": (_set("time_dt", "yesterday"), "does not match datetime_t"),
    "null": (_set("message", None), "message: null value"),
    "not an array": (_set("finding_info.types", "x"), "expected an array of string_t"),
    "object expected": (_set("metadata.product", "sessionwarden"), "expected an object"),
    "enum value": (_set("severity_id", 7), "7 is not a value of this enum"),
    "enum sibling": (_set("severity", "Low"), "'Low' is not the caption 'High'"),
    "deprecated attribute": (_set("finding_info.product_uid", "x"), "deprecated attribute"),
    "constraint": (_set("evidences.0.src_endpoint.location", {"lat": 1.0, "long": 2.0}),
                   "constraint at_least_one of ['city', 'country'"),
    "type_uid": (_set("type_uid", 200402), "type_uid: expected 200401"),
    "schema version": (_set("metadata.version", "1.7.0"), "is not the schema version 1.8.0"),
    "observable type (issue 12: user id as User Name)": (
        _set("observables.0.type_id", 4), "type_id 4 for 'evidences.actor.user.uid'"),
    "observable caption": (_set("observables.0.type", "User Name"),
                           "'User Name' is not the caption 'User Object: uid'"),
    "observable name": (_set("observables.0.name", "actor.user.uid"),
                        "does not refer to an attribute"),
    "observable value": (_set("observables.0.value", "someone-else"),
                         "is not the value of any 'evidences.actor.user.uid'"),
    "observable without a type": (_set("observables.0.name", "finding_info.title"),
                                  "has no observable type"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_validator_rejects(case: str, demo_alerts: list[dict[str, Any]],
                           schema: Schema) -> None:
    change, expected = CASES[case]
    valid = by_analytic(demo_alerts, "asn_binding")[0]
    assert validate(valid, schema).errors == []
    errors = validate(mutated(valid, change), schema).errors
    assert any(expected in e for e in errors), errors


def test_the_old_alert_shape_is_rejected_by_ocsf_1_3(demo_alerts: list[dict[str, Any]]) -> None:
    """What issue 12 found in the 1.3.0 alerts, found again by the validator."""
    old = load_schema("1.3.0")
    record = copy.deepcopy(demo_alerts[0])
    record["metadata"]["version"] = "1.3.0"
    record["actor"] = {"user": {"uid": "u"}}
    record["http_request"] = {"user_agent": "x"}
    record["src_endpoint"] = {"ip": "1.2.3.4"}
    errors = "\n".join(validate(record, old).errors)
    for attr in ("actor", "http_request", "src_endpoint", "is_alert"):
        assert f"{attr}: unknown attribute" in errors
