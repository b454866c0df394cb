"""`sessionwarden score`: outcomes, rates, alert layouts, errors; generate, replay, score."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from detectors.ocsf import alert_session
from worker.cli import main as cli_main
from worker.evaluation.records import alert_session_id

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent / "sessionwarden"


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
    return path


def _cmd(sid: str, kind: str, cause: str, at: str) -> dict[str, Any]:
    return {"command_id": f"c-{cause}-{kind}", "type": kind, "session_id": sid,
            "cause_event_id": cause, "issued_at": at}


def _alert(sid: str, event: str, at_ms: int, layout: str = "actor") -> dict[str, Any]:
    a: dict[str, Any] = {"class_uid": 2004, "time": at_ms,
                         "finding_info": {"related_events": [{"uid": event}]}}
    if layout == "actor":
        a["actor"] = {"session": {"uid": sid}}
    elif layout == "evidences":
        a["evidences"] = [{"data": {}}, {"actor": {"session": {"uid": sid}}}]
    else:
        a["unmapped"] = {"session_id": sid}
    return a


T0 = 1_790_000_000_000  # 2026-09-21T...Z; any instant works


def _iso(ms: int) -> str:
    from detectors.timefmt import format_time  # noqa: PLC0415

    return format_time(ms)


def _hijack(sid: str, scenario: str, attack: list[str], at: int) -> dict[str, Any]:
    return {"session_id": sid, "user_id": "u", "label": "hijack", "scenario": scenario,
            "phase": "evaluation", "attack_event_id": attack[0], "attack_at": _iso(at),
            "attacker_event_ids": attack}


def _benign(sid: str, scenario: str, phase: str = "evaluation",
            known: bool = True) -> dict[str, Any]:
    return {"session_id": sid, "user_id": "u", "label": "benign", "scenario": scenario,
            "phase": phase, "attack_event_id": None, "stays_in_known_countries": known}


@pytest.fixture
def constructed(tmp_path: Path) -> tuple[Path, Path]:
    """Seven sessions whose outcomes are known by construction.

    h1: revoked on the attacker's first request; h2: stepped up on a later
    attacker request; h3: only alerted (alert in the evidences layout);
    h4: nothing at all (missed); h5: revoked an hour before the attacker came;
    h6: an alert only before the attack (still missed), unmapped layout.
    b1: clean; b2: false revoke; b3: false step-up outside known countries
    (a flight); l1: a learning session falsely revoked.
    """
    labels = _write(tmp_path / "labels.jsonl", [
        _hijack("h1", "cloud", ["h1-a1", "h1-a2"], T0 + 10_000),
        _hijack("h2", "cloud", ["h2-a1", "h2-a2"], T0 + 10_000),
        _hijack("h3", "tor", ["h3-a1"], T0 + 10_000),
        _hijack("h4", "tor", ["h4-a1"], T0 + 10_000),
        _hijack("h5", "tor", ["h5-a1"], T0 + 3_600_000),
        _hijack("h6", "tor", ["h6-a1"], T0 + 3_600_000),
        _benign("b1", "same_network"), _benign("b2", "wifi_cellular"),
        _benign("b3", "long_haul_flight", known=False), _benign("b4", "same_network"),
        _benign("l1", "history", phase="learning"), _benign("l2", "history", phase="learning"),
    ])
    out = tmp_path / "out"
    out.mkdir()
    _write(out / "commands.jsonl", [
        _cmd("h1", "set_idle_expires_at", "h1-v1", _iso(T0)),  # not an acting command
        _cmd("h1", "revoke_session", "h1-a1", _iso(T0 + 10_000)),
        _cmd("h2", "require_reauthentication", "h2-a2", _iso(T0 + 20_000)),
        _cmd("h5", "revoke_session", "h5-v2", _iso(T0)),
        _cmd("b2", "revoke_session", "b2-e3", _iso(T0)),
        _cmd("b3", "require_reauthentication", "b3-e4", _iso(T0)),
        _cmd("zz", "revoke_session", "zz-1", _iso(T0)),  # a session without a label
        _cmd("l1", "revoke_session", "l1-e2", _iso(T0)),
    ])
    _write(out / "alerts.jsonl", [
        _alert("h3", "h3-a1", T0 + 10_000, "evidences"),
        _alert("h6", "h6-v1", T0, "unmapped"),
        _alert("b4", "b4-e2", T0),
        _alert("zz", "zz-1", T0),
    ])
    return out, labels


def _score(out: Path, labels: Path, capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert cli_main(["score", str(out), "--labels", str(labels), "--json", "--sessions"]) == 0
    report: dict[str, Any] = orjson.loads(capsys.readouterr().out)
    return report


def test_outcomes_and_rates_of_a_constructed_replay(constructed: tuple[Path, Path],
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    report = _score(*constructed, capsys)
    by_sid = {s["session_id"]: s for s in report["sessions"]}
    assert {k: by_sid[k]["outcome"] for k in ("h1", "h2", "h3", "h4", "h5", "h6")} == {
        "h1": "revoked", "h2": "stepped_up", "h3": "alerted", "h4": "missed",
        "h5": "acted_before_attack", "h6": "missed"}
    assert by_sid["h1"]["acted_on"] == "first" and by_sid["h1"]["on_first_request"]
    assert by_sid["h2"]["acted_on"] == "later" and not by_sid["h2"]["on_first_request"]
    o = report["overall"]
    assert o["hijack_sessions"] == 6 and o["benign_sessions"] == 4
    assert o["hijack_acted_rate"] == round(2 / 6, 4)
    assert o["hijack_acted_on_first_request_rate"] == round(1 / 6, 4)
    assert o["hijack_revoked_rate"] == round(1 / 6, 4)
    assert o["hijack_stepped_up_rate"] == round(1 / 6, 4)
    assert o["hijack_only_alerted_rate"] == round(1 / 6, 4)
    assert o["hijack_missed_rate"] == round(2 / 6, 4)
    assert o["hijack_acted_before_attack_rate"] == round(1 / 6, 4)
    assert o["benign_false_revoke_rate"] == 0.25 and o["benign_false_step_up_rate"] == 0.25
    assert o["benign_known_countries_sessions"] == 3
    assert o["benign_known_countries_false_step_up_rate"] == 0.0
    assert o["learning_sessions"] == 2 and o["learning_false_revoke_rate"] == 0.5
    rows = {(r["phase"], r["scenario"]): r for r in report["scenarios"]}
    assert rows[("evaluation", "cloud")]["revoked_rate"] == 0.5
    assert rows[("evaluation", "cloud")]["stepped_up_rate"] == 0.5
    assert rows[("evaluation", "tor")]["missed"] == 2
    assert rows[("evaluation", "same_network")]["alert_rate"] == 0.5
    assert report["inputs"]["acting_commands_unlabelled"] == 1
    assert report["inputs"]["alerts_unlabelled"] == 1


def test_table_output_names_every_scenario(constructed: tuple[Path, Path],
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["score", str(constructed[0]), "--labels", str(constructed[1])]) == 0
    text = capsys.readouterr().out
    for name in ("cloud", "tor", "same_network", "wifi_cellular", "long_haul_flight",
                 "history", "Overall", "33.3%"):
        assert name in text


def test_alert_session_id_tries_every_known_place() -> None:
    assert alert_session_id(_alert("s1", "e", 0, "actor")) == "s1"
    assert alert_session_id(_alert("s2", "e", 0, "evidences")) == "s2"
    assert alert_session_id(_alert("s3", "e", 0, "unmapped")) == "s3"
    assert alert_session_id({"metadata": {"correlation_uid": "s4"}}) == "s4"
    assert alert_session_id({"actor": {"user": {"uid": "x"}}}) is None


@pytest.mark.parametrize("breakage", ["no_dir", "no_labels", "bad_labels", "bad_label_fields",
                                      "no_alerts", "bad_commands", "empty_labels"])
def test_unreadable_inputs_exit_2_with_one_line(constructed: tuple[Path, Path], breakage: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    out, labels = constructed
    if breakage == "no_dir":
        out = out.parent / "missing"
    elif breakage == "no_labels":
        labels = labels.parent / "missing.jsonl"
    elif breakage == "bad_labels":
        labels.write_bytes(b'{"session_id": "x"\n')
    elif breakage == "bad_label_fields":
        labels.write_bytes(b'{"session_id": "x", "label": "maybe", "scenario": "s"}\n')
    elif breakage == "empty_labels":
        labels.write_bytes(b"\n")
    elif breakage == "no_alerts":
        (out / "alerts.jsonl").unlink()
    else:
        (out / "commands.jsonl").write_bytes(b"garbage\n")
    assert cli_main(["score", str(out), "--labels", str(labels)]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("sessionwarden: ") and "Traceback" not in captured.err


def _oracle(out: Path, labels: list[dict[str, Any]]) -> dict[str, str]:
    """Independent per-session outcome from the attacker event ids alone."""
    cmds = [orjson.loads(x) for x in (out / "commands.jsonl").read_bytes().splitlines()]
    alerts = [orjson.loads(x) for x in (out / "alerts.jsonl").read_bytes().splitlines()]
    acting = {"revoke_session", "require_reauthentication"}
    result = {}
    for r in labels:
        sid = r["session_id"]
        mine = [c for c in cmds if c["session_id"] == sid and c["type"] in acting]
        if r["label"] == "benign":
            result[sid] = "revoked" if any(c["type"] == "revoke_session" for c in mine) else \
                "stepped_up" if mine else "other"
            continue
        attack = set(r["attacker_event_ids"])
        after = [c for c in mine if c["cause_event_id"] in attack
                 or c["issued_at"] >= r["attack_at"]]
        if after:
            result[sid] = "revoked" if any(c["type"] == "revoke_session" for c in after) \
                else "stepped_up"
        elif mine:
            result[sid] = "acted_before_attack"
        elif any(alert_session(a) == sid
                 and ({e["uid"] for e in a["finding_info"]["related_events"]} & attack
                      or a["time_dt"] >= r["attack_at"]) for a in alerts):
            result[sid] = "alerted"
        else:
            result[sid] = "missed"
    return result


def test_generate_replay_score_end_to_end(tmp_path: Path) -> None:
    """The whole loop a user runs, through the real commands."""
    events, labels = tmp_path / "corpus.jsonl", tmp_path / "labels.jsonl"
    spec = importlib.util.spec_from_file_location("generate_labelled",
                                                  ROOT / "data" / "generate_labelled.py")
    assert spec is not None and spec.loader is not None
    gen = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = gen
    spec.loader.exec_module(gen)
    assert gen.main(["--out", str(events), "--labels", str(labels), "--benign-per-scenario",
                     "3", "--hijack-per-scenario", "3", "--history-days", "3"]) == 0
    out = tmp_path / "out"
    run = subprocess.run([str(BIN), "replay", str(events), "--out", str(out)],
                         capture_output=True, check=False, timeout=120)
    assert run.returncode == 0, run.stderr.decode()
    run = subprocess.run([str(BIN), "score", str(out), "--labels", str(labels), "--json",
                          "--sessions"], capture_output=True, check=False, timeout=120)
    assert run.returncode == 0, run.stderr.decode()
    report = orjson.loads(run.stdout)
    label_recs = [orjson.loads(x) for x in labels.read_bytes().splitlines()]
    expected = _oracle(out, label_recs)
    got = {s["session_id"]: s["outcome"] for s in report["sessions"]}
    for sid, want in expected.items():
        if want == "other":  # benign alerted/clean: the oracle does not split these
            assert got[sid] in ("alerted", "clean")
        else:
            assert got[sid] == want, sid
    hij = [r for r in label_recs if r["label"] == "hijack"]
    ben = [r for r in label_recs if r["label"] == "benign" and r["phase"] == "evaluation"]
    o = report["overall"]
    assert o["hijack_sessions"] == len(hij) == 18 and o["benign_sessions"] == len(ben) == 33
    acted = sum(expected[r["session_id"]] in ("revoked", "stepped_up") for r in hij)
    assert o["hijack_acted_rate"] == round(acted / len(hij), 4)
    false_revoked = sum(expected[r["session_id"]] == "revoked" for r in ben)
    assert o["benign_false_revoke_rate"] == round(false_revoked / len(ben), 4)
    # Scenario rows hold every evaluated session, and their outcomes add up.
    for row in report["scenarios"]:
        if row["label"] == "hijack":
            assert sum(row[k] for k in ("revoked", "stepped_up", "alerted", "missed",
                                        "acted_before_attack")) == row["sessions"] == 3
    # Whatever the policy, nothing changes in a same-network session: never revoked.
    same = next(r for r in report["scenarios"] if r["scenario"] == "same_network")
    assert same["revoked"] == 0 and same["stepped_up"] == 0


def test_bench_evaluation_section(tmp_path: Path) -> None:
    """bench.evaluation runs the loop and reports sizes next to the score."""
    from bench.evaluation import evaluate  # noqa: PLC0415

    report = evaluate(tmp_path, benign=1, hijack=1, history_days=1, seed=2)
    assert report["corpus"]["events"] == sum(1 for _ in (tmp_path / "corpus.jsonl").open())
    assert report["overall"]["hijack_sessions"] == 6
    assert report["overall"]["benign_sessions"] == 11
    assert report["replay_wall_s"] > 0
