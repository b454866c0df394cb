"""Replay as a hostile or careless user runs it (issue 8, items 8-12).

Why: every "could not run" must be one line and exit 2, never a traceback;
a failed run must not leave partial outputs or destroy an input; and the
inputs people really have (compressed, stdin, BOM, pretty-printed) must work.
Each test here failed on the code before the hardening.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import zstandard
from pydantic import SecretStr

from worker import enrich
from worker.cli import main
from worker.enrich import Enricher, EnrichmentError, resolve_database
from worker.settings import DecisionSettings, Settings

REPO = Path(__file__).resolve().parents[2]
MMDB = REPO / "data" / "mmdb"
UA = "Chrome 120.0.0 / Mac OS X 10.15.7"


def native(n: int, session: str = "s1", ip: str = "89.160.20.112", kind: str = "login") -> bytes:
    return orjson.dumps({"event_id": f"e{n}", "type": kind,
                         "occurred_at": 1795773600000 + n * 1000, "tenant": "acme",
                         "session": {"id": session}, "user": {"id": "u1"},
                         "request": {"ip": ip, "user_agent": UA}})


def lines(n: int = 3) -> bytes:
    return b"".join(native(i, ip="216.160.83.56" if i else "89.160.20.112") + b"\n"
                    for i in range(n))


def run_cli(*args: str, stdin: bytes | None = None,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[bytes]:
    import os  # noqa: PLC0415

    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SESSIONWARDEN_")}
    full_env.update(env or {})
    return subprocess.run([sys.executable, "-m", "worker", *args], input=stdin,
                          capture_output=True, env=full_env, cwd=REPO, check=False)


def assert_one_line_exit_2(proc: subprocess.CompletedProcess[bytes], *needles: str) -> None:
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    problem = [line for line in err.splitlines() if line.startswith("sessionwarden: ")]
    assert len(problem) == 1, err
    for needle in needles:
        assert needle in problem[0], problem[0]


def summary(out: Path) -> dict[str, object]:
    data: dict[str, object] = orjson.loads((out / "summary.json").read_bytes())
    return data


# -- item 8: exit codes ------------------------------------------------------------------


def test_input_that_is_a_directory_or_missing(tmp_path: Path) -> None:
    assert_one_line_exit_2(run_cli("replay", str(tmp_path), "--out", str(tmp_path / "o")),
                           "is a directory")
    assert_one_line_exit_2(run_cli("replay", str(tmp_path / "x.jsonl"), "--out",
                                   str(tmp_path / "o")), "no such file")


def test_out_that_is_a_file_or_unwritable(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(lines())
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert_one_line_exit_2(run_cli("replay", str(src), "--out", str(blocker)), "is a file")
    assert_one_line_exit_2(run_cli("replay", str(src), "--out", str(blocker / "sub")),
                           "cannot write --out")


def test_unknown_input_format_variable(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(lines())
    proc = run_cli("replay", str(src), "--out", str(tmp_path / "o"),
                   env={"SESSIONWARDEN_INPUT_FORMAT": "xml"})
    assert_one_line_exit_2(proc, "SESSIONWARDEN_INPUT_FORMAT='xml'", "'auth0'")


def test_a_bad_worker_only_setting_does_not_break_replay(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(lines())
    proc = run_cli("replay", str(src), "--out", str(tmp_path / "o"),
                   env={"SESSIONWARDEN_WEB_PORT": "abc", "SESSIONWARDEN_STORE": "redis://"})
    assert proc.returncode == 0, proc.stderr.decode()


def test_worker_validates_its_policy_before_touching_kafka(tmp_path: Path) -> None:
    """A policy typo is named at once, not hidden behind a broker error (nothing listens)."""
    import socket  # noqa: PLC0415

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    policy = tmp_path / "policy.toml"
    policy.write_text("[tenant]\nabsolute_lifetime_hour = 5\n")
    proc = run_cli("worker", "--policy", str(policy),
                   env={"SESSIONWARDEN_BROKER": f"127.0.0.1:{port}",
                        "SESSIONWARDEN_DATA_DIR": str(tmp_path / "state"),
                        "SESSIONWARDEN_STARTUP_TIMEOUT": "30"})
    err = proc.stderr.decode()
    assert proc.returncode == 2 and "Traceback" not in err, err
    assert "absolute_lifetime_hour: unknown key" in err
    assert "not reachable" not in err, "the broker must not even be tried"


def test_database_of_the_wrong_kind_is_refused_up_front(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(lines())
    proc = run_cli("replay", str(src), "--out", str(tmp_path / "o"),
                   "--city-db", str(MMDB / "GeoLite2-ASN-Test.mmdb"))
    assert_one_line_exit_2(proc, "GeoLite2-ASN database", "SESSIONWARDEN_CITY_DB")
    assert not (tmp_path / "o").exists()


def test_secrets_never_show_in_reprs_or_errors() -> None:
    s = Settings(sasl_password="hunter2-secret", ssl_keyfile_password="k3y-secret")
    assert isinstance(s.sasl_password, SecretStr)
    text = repr(s) + str(s) + str(s.model_dump())
    assert "hunter2" not in text and "k3y" not in text


def test_choices_are_validated() -> None:
    with pytest.raises(ValueError, match="store"):
        Settings(store="redis://")
    with pytest.raises(ValueError, match="log_format"):
        Settings(log_format="xml")
    assert Settings(security_protocol="sasl_ssl", log_level="debug").security_protocol == \
        "SASL_SSL"
    assert Settings().web_host == "127.0.0.1", "never listen on every interface by default"


# -- item 9: atomic outputs ---------------------------------------------------------------


def test_failed_run_keeps_previous_outputs_and_leaves_no_partial_files(tmp_path: Path) -> None:
    good = tmp_path / "in.jsonl"
    good.write_bytes(lines(5))
    out = tmp_path / "out"
    assert main(["replay", str(good), "--out", str(out)]) == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    broken = tmp_path / "broken.jsonl.gz"
    broken.write_bytes(gzip.compress(lines(2000))[:-300])  # truncated mid-stream
    proc = run_cli("replay", str(good), str(broken), "--out", str(out))
    assert_one_line_exit_2(proc, "cannot read input", str(broken))
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.jsonl.gz", "in.jsonl", "out"]


def test_an_input_inside_out_is_refused_and_kept(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(lines() + b"{garbage\n")
    out = tmp_path / "out"
    assert main(["replay", str(src), "--out", str(out)]) == 0
    dead = out / "dead_letter.jsonl"
    content = dead.read_bytes()
    assert content
    assert_one_line_exit_2(run_cli("replay", str(dead), "--out", str(out)),
                           "inside the output directory")
    assert dead.read_bytes() == content


def test_out_holding_other_files_is_not_replaced(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    src.write_bytes(lines())
    home = tmp_path / "home"
    home.mkdir()
    (home / "thesis.tex").write_text("precious")
    assert_one_line_exit_2(run_cli("replay", str(src), "--out", str(home)),
                           "not replay outputs")
    assert (home / "thesis.tex").read_text() == "precious"


# -- item 10: inputs people have -----------------------------------------------------------


@pytest.mark.parametrize("compress", [gzip.compress, bz2.compress, lzma.compress,
                                      lambda b: zstandard.ZstdCompressor().compress(b)],
                         ids=["gzip", "bzip2", "xz", "zstd"])
def test_compressed_exports_are_detected_by_magic_bytes(tmp_path: Path, compress: object) -> None:
    plain = tmp_path / "plain.jsonl"
    plain.write_bytes(lines(50))
    packed = tmp_path / "export.bin"  # no telling extension: magic bytes decide
    packed.write_bytes(compress(lines(50)))  # type: ignore[operator]
    assert main(["replay", str(plain), "--out", str(tmp_path / "a")]) == 0
    assert main(["replay", str(packed), "--out", str(tmp_path / "b")]) == 0
    assert summary(tmp_path / "b")["dead_letters"] == 0
    for name in ("commands.jsonl", "audit.jsonl", "alerts.jsonl"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_stdin_bom_and_pretty_printed_json(tmp_path: Path) -> None:
    proc = run_cli("replay", "-", "--out", str(tmp_path / "stdin"),
                   stdin=b"\xef\xbb\xbf" + lines(4))
    assert proc.returncode == 0, proc.stderr.decode()
    assert summary(tmp_path / "stdin")["events_processed"] == 4
    assert summary(tmp_path / "stdin")["dead_letters"] == 0
    pretty = tmp_path / "one.json"
    pretty.write_bytes(orjson.dumps(orjson.loads(native(1)), option=orjson.OPT_INDENT_2))
    assert main(["replay", str(pretty), "--out", str(tmp_path / "pretty")]) == 0
    assert summary(tmp_path / "pretty")["events_processed"] == 1


def test_mostly_dead_input_warns_and_can_fail(tmp_path: Path) -> None:
    src = tmp_path / "wrong.jsonl"
    src.write_bytes(lines(2) + b"".join(b"id,time,ip\n" for _ in range(8)))
    proc = run_cli("replay", str(src), "--out", str(tmp_path / "o"))
    assert proc.returncode == 0
    assert "80%" in proc.stderr.decode() and "--format" in proc.stderr.decode()
    proc = run_cli("replay", str(src), "--out", str(tmp_path / "o2"), "--max-dead-ratio", "0.5")
    assert proc.returncode == 1
    assert (tmp_path / "o2" / "summary.json").is_file()


# -- item 12: packaging ---------------------------------------------------------------------


def test_version_and_start_up_line(tmp_path: Path) -> None:
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.decode().startswith("sessionwarden ")
    src = tmp_path / "in.jsonl"
    src.write_bytes(lines())
    proc = run_cli("replay", str(src), "--out", str(tmp_path / "o"))
    err = proc.stderr.decode()
    assert "policy sha256:" in err and "GeoIP2-City, built 20" in err
    assert "WARNING: using the bundled TEST databases" in err


def test_without_a_source_checkout_databases_must_be_named(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(enrich, "BUNDLED", dict.fromkeys(enrich.BUNDLED, tmp_path / "absent"))
    with pytest.raises(EnrichmentError, match="SESSIONWARDEN_CITY_DB"):
        Enricher.from_settings(DecisionSettings())
    assert resolve_database("city_db", "") is None, "an empty value disables the database"
    explicit = str(MMDB / "GeoIP2-City-Test.mmdb")
    assert resolve_database("city_db", explicit) == explicit
    copy = tmp_path / "city.mmdb"
    copy.write_bytes((MMDB / "GeoIP2-City-Test.mmdb").read_bytes())
    dbs = Enricher(str(copy), None, None).databases()
    assert [d.test_data for d in dbs] == [True], "a copied test database is still test data"
