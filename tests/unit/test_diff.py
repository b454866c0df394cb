"""`sessionwarden diff`: two policies with a known difference, one pass or two directories."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from tests.unit.test_report import MAC, native
from worker.cli import main
from worker.replay import OUTPUT_FILES

# s1 moves from a Swedish to a US network a minute later (by default asn_binding steps
# up and impossible_travel revokes; the candidate only alerts on both); s2 switches
# device (ua_drift: revoke under both); s3 is an admin,
# whom only the candidate's expiry rule gives an 8-hour lifetime.
EVENTS = [
    native(1, "s1", "89.160.20.112"),
    native(2, "s1", "216.160.83.56", "silent_auth"),
    native(3, "s2", "89.160.20.112", user="u2"),
    native(4, "s2", "89.160.20.112", "silent_auth", ua=MAC, user="u2"),
    orjson.dumps({"event_id": "e5", "type": "login", "occurred_at": 1795773900000,
                  "tenant": "acme", "session": {"id": "s3", "created_at": 1795773900000},
                  "user": {"id": "u3", "groups": ["admins"]},
                  "request": {"ip": "89.160.20.112"}}),
]
CANDIDATE = """
[detectors.asn_binding]
action = "alert"

[detectors.impossible_travel]
action = "alert"

[[expiry_rules]]
name = "admins-8h"
match = { groups = ["admins"] }
absolute_timeout_ms = 28800000
"""


@pytest.fixture
def inputs(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"\n".join(EVENTS) + b"\n")
    policy = tmp_path / "candidate.toml"
    policy.write_text(CANDIDATE)
    return src, policy


def check_known_difference(diff: dict) -> None:
    assert diff["counts"]["no_longer_revoked"] == 1
    assert diff["counts"]["newly_revoked"] == 0
    assert diff["counts"]["changed_expiry"] == 1
    assert diff["sessions"]["no_longer_revoked"][0]["session_id"] == "s1"
    assert diff["sessions"]["changed_expiry"][0] == {
        "session_id": "s3", "tenant": "acme", "user_id": "u3", "was": None,
        "now": "2026-11-27T18:05:00.000Z"}  # created 10:05 + 8 h
    assert diff["by_detector"]["impossible_travel"] == {"no_longer_revoked": 1}
    assert "ua_drift" not in diff["by_detector"]  # s2 is revoked under both
    assert diff["findings_by_detector"]["impossible_travel:revoke"] == {"base": 1, "candidate": 0}
    assert diff["findings_by_detector"]["impossible_travel:alert"] == {"base": 0, "candidate": 1}
    assert diff["findings_by_detector"]["asn_binding:step_up"] == {"base": 1, "candidate": 0}
    assert diff["findings_by_detector"]["asn_binding:alert"] == {"base": 0, "candidate": 1}
    assert diff["commands_by_type"]["revoke_session"] == {"base": 2, "candidate": 1}


def test_one_pass_under_two_policies(inputs: tuple[Path, Path], tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    src, policy = inputs
    out = tmp_path / "diff"
    assert main(["diff", str(src), "--policy", str(policy), "--base-policy", "builtin",
                 "--out", str(out), "--report"]) == 0
    diff = orjson.loads(capsys.readouterr().out)  # stdout is not a terminal: JSON
    check_known_difference(diff)
    assert orjson.loads((out / "diff.json").read_bytes()) == diff
    html = (out / "report.html").read_text()
    assert 'data-diff="no_longer_revoked">1<' in html and "s1" in html
    # the directory is the candidate's replay, byte for byte
    alone = tmp_path / "alone"
    assert main(["replay", str(src), "--policy", str(policy), "--out", str(alone)]) == 0
    for name in [*OUTPUT_FILES, "summary.json"]:
        if name != "signals.jsonl":  # signed with an ephemeral key per run
            assert (out / name).read_bytes() == (alone / name).read_bytes(), name


def test_two_output_directories_give_the_same_diff(inputs: tuple[Path, Path], tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    src, policy = inputs
    base, cand = tmp_path / "base", tmp_path / "cand"
    assert main(["replay", str(src), "--out", str(base)]) == 0
    assert main(["replay", str(src), "--policy", str(policy), "--out", str(cand)]) == 0
    capsys.readouterr()
    assert main(["diff", "--outputs", str(base), str(cand), "--json"]) == 0
    diff = orjson.loads(capsys.readouterr().out)
    check_known_difference(diff)
    assert orjson.loads((cand / "diff.json").read_bytes()) == diff


def test_same_policy_twice_changes_nothing(inputs: tuple[Path, Path], tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    src, _ = inputs
    assert main(["diff", str(src), "--base-policy", "builtin", "--out",
                 str(tmp_path / "d")]) == 0
    captured = capsys.readouterr()
    assert set(orjson.loads(captured.out)["counts"].values()) == {0}
    assert "the base and candidate policies are the same" in captured.err


def test_diff_needs_something_to_compare(tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff"]) == 2
    assert main(["diff", "--outputs", str(tmp_path), str(tmp_path)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and "not a replay output directory" in err[1]
