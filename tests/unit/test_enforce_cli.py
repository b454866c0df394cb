"""`sessionwarden enforce|ingest`: "could not run" is exit 2 with one line, secrets stay out."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from worker.cli import main

TARGETS = ('[tenants.acme]\nkind = "keycloak"\nbase_url = "http://127.0.0.1:1"\n'
           'realm = "acme"\nclient_id = "enf"\nclient_secret_env = "SW_TEST_KC_SECRET"\n')


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    return code, capsys.readouterr().err


def test_missing_targets_and_missing_secret_exit_2_with_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SESSIONWARDEN_TARGETS_FILE", raising=False)
    monkeypatch.delenv("SW_TEST_KC_SECRET", raising=False)
    code, err = run(capsys, "enforce", "--log-format", "text")
    assert code == 2 and err.strip() == ("sessionwarden: enforce needs a targets file "
                                         "(--targets or SESSIONWARDEN_TARGETS_FILE)")
    targets = tmp_path / "targets.toml"
    targets.write_text(TARGETS)
    code, err = run(capsys, "enforce", "--targets", str(targets), "--log-format", "text")
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert "SW_TEST_KC_SECRET is not set" in err
    code, err = run(capsys, "enforce", "--targets", str(tmp_path / "nope.toml"))
    assert code == 2 and "cannot read targets file" in err


def test_bad_rails_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    policy = tmp_path / "policy.toml"
    policy.write_text('[enforcement]\nmode = "sometimes"\n')
    code, err = run(capsys, "enforce", "--policy", str(policy), "--targets", "x.toml",
                    "--log-format", "text")
    assert code == 2 and "enforcement.mode" in err and len(err.strip().splitlines()) == 1


def test_unreachable_broker_exits_2_without_traceback_or_secret(tmp_path: Path) -> None:
    targets = tmp_path / "targets.toml"
    targets.write_text(TARGETS)
    env = {"PATH": "/usr/bin:/bin", "SW_TEST_KC_SECRET": "very-secret-value"}
    out = subprocess.run([sys.executable, "-m", "worker", "enforce", "--targets", str(targets),
                          "--broker", "127.0.0.1:1", "--no-web", "--log-format", "text"],
                         capture_output=True, text=True, env=env, timeout=60, check=False,
                         cwd=Path(__file__).resolve().parents[2])
    assert out.returncode == 2, out.stderr
    assert "sessionwarden: enforce could not run" in out.stderr
    assert "Traceback" not in out.stderr and "very-secret-value" not in out.stderr


def test_release_needs_a_choice(capsys: pytest.CaptureFixture[str]) -> None:
    code, err = run(capsys, "enforce", "release", "--tenant", "acme")
    assert code == 2 and "--command-id ID (repeatable) or --all" in err


def test_help_does_not_import_kafka_or_http_clients() -> None:
    probe = ("import sys\nfrom worker.cli import build_parser\nbuild_parser()\n"
             "print(sorted(m for m in ('aiokafka', 'httpx', 'aiohttp', 'faust') "
             "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         check=True, cwd=Path(__file__).resolve().parents[2])
    assert out.stdout.strip() == "[]"
