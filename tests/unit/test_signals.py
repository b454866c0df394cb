"""CAEP Security Event Tokens: every revoke has a verifiable session-revoked SET (issue 12).

Why: relying parties act on `session-signals` only if each token verifies
against the published JWKS and says what the CAEP spec says it must. The
tokens are signed with joserfc and verified here with jwcrypto (tests/caep.py),
then checked against the SET, subject-identifier and CAEP event schemas.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import orjson
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwcrypto.common import JWException
from pydantic import SecretStr

from detectors import DEFAULT_POLICY, Finding
from detectors.timefmt import format_time
from tests.caep import CAEP, claim_errors, verify
from worker.cli import main
from worker.enrich import Enricher
from worker.replay import replay
from worker.settings import Settings
from worker.signals.caep import SubjectConfig, signals_for
from worker.signals.keys import SigningKey, SigningKeyError
from worker.signals.tokens import Signer

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "data" / "demo" / "events.jsonl"
REVOKED = CAEP + "session-revoked"
RISK = CAEP + "risk-level-change"


def pem(key: Any, private: bool = True) -> bytes:
    if private:
        return bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    return bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo))


@pytest.fixture(scope="module")
def key_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("key") / "set-signing.pem"
    path.write_bytes(pem(rsa.generate_private_key(public_exponent=65537, key_size=2048)))
    return path


def signer_for(key_file: Path, **settings: Any) -> Signer:
    signer = Signer.from_settings(Settings(signing_key_file=key_file, **settings),
                                  ephemeral_ok=False)
    assert signer is not None
    return signer


def lines(path: Path) -> list[dict[str, Any]]:
    return [orjson.loads(x) for x in path.read_bytes().splitlines()]


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory, enricher: Enricher,
         key_file: Path) -> Path:
    out = tmp_path_factory.mktemp("demo")
    replay([DEMO], out, DEFAULT_POLICY, enricher,
           signer=signer_for(key_file, signals_issuer="https://sw.example.com/",
                             signals_audience="https://rp.example.com/caep"))
    return out


def test_every_demo_signal_verifies_with_jwcrypto_and_fits_the_caep_schemas(
        demo: Path) -> None:
    jwks = orjson.loads((demo / "jwks.json").read_bytes())
    [published] = jwks["keys"]
    assert set(published) == {"kty", "kid", "use", "alg", "n", "e"}  # no private parameters
    records = lines(demo / "signals.jsonl")
    assert len(records) > 50
    for record in records:
        header, claims = verify(record["set"], jwks)
        assert header == {"alg": "RS256", "typ": "secevent+jwt", "kid": published["kid"]}
        assert claim_errors(claims) == [], claims
        assert claims["jti"] == record["jti"]
        assert list(claims["events"]) == [record["event_type"]]
        assert claims["sub_id"]["session"] == {"format": "opaque", "id": record["session_id"]}
        assert claims["iss"] == "https://sw.example.com/"
        assert claims["aud"] == "https://rp.example.com/caep"
    assert len({r["jti"] for r in records}) == len(records)


def test_every_revoke_has_exactly_one_session_revoked_set(demo: Path) -> None:
    jwks = orjson.loads((demo / "jwks.json").read_bytes())
    revokes = [c for c in lines(demo / "commands.jsonl") if c["type"] == "revoke_session"]
    signals = {r["command_id"]: r for r in lines(demo / "signals.jsonl")
               if r["event_type"] == REVOKED}
    assert revokes and set(signals) == {c["command_id"] for c in revokes}
    for cmd in revokes:
        _, claims = verify(signals[cmd["command_id"]]["set"], jwks)
        event = claims["events"][REVOKED]
        assert claims["txn"] == cmd["cause_event_id"]
        assert claims["sub_id"] == {
            "format": "complex",
            "session": {"format": "opaque", "id": cmd["session_id"]},  # as the IdP gave it
            "user": {"format": "opaque", "id": cmd["user_id"]},
            "tenant": {"format": "opaque", "id": cmd["tenant"]}}
        assert event["initiating_entity"] == "policy"
        assert event["reason_user"] == {"en": cmd["reason"]}
        assert event["reason_admin"]["en"].startswith(cmd["reason"])
        assert cmd["policy_version"] in event["reason_admin"]["en"]
        assert event["event_timestamp"] == claims["iat"]
        assert cmd["issued_at"].startswith(format_time(claims["iat"] * 1000)[:19])


def test_alert_only_findings_become_risk_level_changes(demo: Path) -> None:
    jwks = orjson.loads((demo / "jwks.json").read_bytes())
    risk = [r for r in lines(demo / "signals.jsonl") if r["event_type"] == RISK]
    assert risk
    alerted_only = {a["metadata"]["correlation_uid"] for a in lines(demo / "alerts.jsonl")
                    if a["disposition"] == "Detected"}
    for record in risk:
        _, claims = verify(record["set"], jwks)
        event = claims["events"][RISK]
        assert record["command_id"] is None
        assert event["principal"] == "SESSION"
        assert event["current_level"] in ("LOW", "MEDIUM", "HIGH")
        assert "reason_user" not in event and event["reason_admin"]["en"].endswith(
            "alert only)")
        assert record["session_id"] in alerted_only


def test_signals_are_byte_identical_across_runs_with_a_configured_key(
        tmp_path: Path, enricher: Enricher, key_file: Path, demo: Path) -> None:
    again = tmp_path / "again"
    replay([DEMO], again, DEFAULT_POLICY, enricher,
           signer=signer_for(key_file, signals_issuer="https://sw.example.com/",
                             signals_audience="https://rp.example.com/caep"))
    for name in ("signals.jsonl", "jwks.json"):
        assert (again / name).read_bytes() == (demo / name).read_bytes()


def test_replay_without_a_key_signs_with_an_ephemeral_one(tmp_path: Path) -> None:
    """Claims stay byte-identical across runs; signatures and kid are per run."""
    runs = []
    for name in ("a", "b"):
        assert main(["replay", str(DEMO), "--out", str(tmp_path / name)]) == 0
        runs.append((lines(tmp_path / name / "signals.jsonl"),
                     orjson.loads((tmp_path / name / "jwks.json").read_bytes())))
    (a, jwks_a), (b, jwks_b) = runs
    assert jwks_a != jwks_b
    assert len(a) == len(b) > 0
    for x, y in zip(a, b, strict=True):
        assert x["set"].split(".")[1] == y["set"].split(".")[1]  # same claims bytes
        assert x["set"] != y["set"]
        verify(x["set"], jwks_a)
        verify(y["set"], jwks_b)
        with pytest.raises((JWException, ValueError)):
            verify(x["set"], jwks_b)


def test_a_tampered_token_does_not_verify(demo: Path) -> None:
    jwks = orjson.loads((demo / "jwks.json").read_bytes())
    token = lines(demo / "signals.jsonl")[0]["set"]
    header, payload, signature = token.split(".")
    claims = orjson.loads(base64.urlsafe_b64decode(payload + "=="))
    claims["sub_id"]["session"]["id"] = "someone-else"
    forged = base64.urlsafe_b64encode(orjson.dumps(claims)).rstrip(b"=").decode()
    with pytest.raises(JWException):
        verify(f"{header}.{forged}.{signature}", jwks)


def test_step_up_maps_to_risk_level_change_and_revoke_wins_nothing_else() -> None:
    config = SubjectConfig("https://sw.example.com/",
                           user_issuer="https://{tenant}.idp.example.com/")
    step_up = {"command_id": "c1", "type": "require_reauthentication", "tenant": "acme",
               "session_id": "s-1", "user_id": "auth0|42", "issued_at": "2026-11-01T00:00:00Z",
               "cause_event_id": "e1", "reason": "Device change", "policy_version": "p1"}
    findings = [Finding("ua_drift", "step_up", "Device change", "high", {}, kind="device_change"),
                Finding("ip_binding", "alert", "IP change", "low", {})]
    [signal] = signals_for(config, [step_up], findings, event_id="e1", session_id="s-1",
                           user_id="auth0|42", tenant="acme", occurred_at=1_793_491_200_000)
    assert signal.event_type == RISK and signal.command_id == "c1"
    event = signal.claims["events"][RISK]
    assert event["current_level"] == "HIGH"
    assert event["risk_reason"] == "UA_DRIFT_DEVICE_CHANGE,IP_BINDING"
    assert signal.claims["sub_id"]["user"] == {
        "format": "iss_sub", "iss": "https://acme.idp.example.com/", "sub": "auth0|42"}
    assert claim_errors(signal.claims) == []
    # other commands (expiry, cookie mode) are not signals; no findings, no signal
    expiry = {**step_up, "type": "set_expires_at"}
    assert signals_for(config, [expiry], [], event_id="e2", session_id="s-1", user_id=None,
                       tenant=None, occurred_at=0) == []


def test_key_configuration_errors_are_one_clear_line(
        tmp_path: Path, key_file: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    cases = {
        "public.pem": pem(rsa_key, private=False),
        "short.pem": pem(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
        "ec.pem": pem(ec.generate_private_key(ec.SECP256R1())),
        "junk.pem": b"not a key",
    }
    for name, data in cases.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(SigningKeyError):
            SigningKey.from_file(tmp_path / name)
    src = tmp_path / "in.jsonl"
    src.write_bytes(DEMO.read_bytes().splitlines()[0] + b"\n")
    monkeypatch.setenv("SESSIONWARDEN_SIGNING_KEY_FILE", str(tmp_path / "public.pem"))
    code = main(["replay", str(src), "--out", str(tmp_path / "o")])
    monkeypatch.delenv("SESSIONWARDEN_SIGNING_KEY_FILE")
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "public key" in err[0], err
    with pytest.raises(SigningKeyError, match="not both"):
        Signer.from_settings(Settings(signing_key_file=key_file,
                                      signing_key=SecretStr("x")), ephemeral_ok=True)
    with pytest.raises(SigningKeyError, match="need a signing key"):
        Signer.from_settings(Settings(signals_enabled=True), ephemeral_ok=False)
    assert Signer.from_settings(Settings(), ephemeral_ok=False) is None  # worker: off
    assert Signer.from_settings(Settings(signals_enabled=False), ephemeral_ok=True) is None


def test_key_material_never_shows(key_file: Path) -> None:
    text = key_file.read_text()
    settings = Settings(signing_key=SecretStr(text))
    signer = Signer.from_settings(settings, ephemeral_ok=False)
    assert signer is not None
    body = text.splitlines()[1]
    for shown in (repr(settings), str(settings), repr(signer.key),
                  orjson.dumps(signer.jwks()).decode(), settings.model_dump_json()):
        assert body not in shown
    assert signer.key.kid == signer_for(key_file).key.kid  # same key, file or secret


def test_jwks_command_prints_the_configured_public_key(
        key_file: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("SESSIONWARDEN_SIGNING_KEY_FILE", "SESSIONWARDEN_SIGNING_KEY"):
        monkeypatch.delenv(name, raising=False)
    assert main(["jwks"]) == 2  # no key configured
    assert "no signing key" in capsys.readouterr().err
    monkeypatch.setenv("SESSIONWARDEN_SIGNING_KEY_FILE", str(key_file))
    assert main(["jwks"]) == 0
    printed = orjson.loads(capsys.readouterr().out)
    assert printed == signer_for(key_file).jwks()
    assert "d" not in printed["keys"][0]  # the private exponent never leaves
