"""The end-of-run output: a human summary on a terminal, JSON for machines."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from pathlib import Path

import orjson

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "data" / "demo" / "events.jsonl"


def run_on_a_terminal(*args: str) -> tuple[str, str]:
    """Run the CLI with stdout on a pseudo-terminal; (terminal text, stderr)."""
    leader, follower = pty.openpty()
    env = {**os.environ, "TERM": "xterm", "COLUMNS": "120"}
    proc = subprocess.Popen([sys.executable, "-m", "worker", *args], stdout=follower,
                            stderr=subprocess.PIPE, cwd=REPO, env=env)
    os.close(follower)
    chunks = []
    while True:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process is done writing
            break
        if not data:
            break
        chunks.append(data)
    _, err = proc.communicate(timeout=120)
    os.close(leader)
    assert proc.returncode == 0, err
    return b"".join(chunks).decode(errors="replace"), err.decode()


def test_on_a_terminal_replay_prints_a_human_summary_and_where_to_look(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    text, err = run_on_a_terminal("replay", str(DEMO), "--out", str(out), "--report")
    summary = orjson.loads((out / "summary.json").read_bytes())
    assert not text.lstrip().startswith("{")
    assert f"Replayed {summary['events_read']:,} records" in text
    assert f"{summary['commands_by_type']['revoke_session']} sessions revoked" in text
    assert "asn_binding" in text and "findings" in text  # the per-detector table
    assert str(out / "report.html") in text.replace("\r\n", "").replace("\n", "")
    assert f"report: {out / 'report.html'}" in err


def test_json_flag_and_pipes_get_the_json_summary(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    text, _ = run_on_a_terminal("replay", str(DEMO), "--out", str(out), "--json")
    assert orjson.loads(text) == orjson.loads((out / "summary.json").read_bytes())
    piped = subprocess.run([sys.executable, "-m", "worker", "replay", str(DEMO), "--out",
                            str(out)], capture_output=True, cwd=REPO, check=True)
    assert orjson.loads(piped.stdout) == orjson.loads((out / "summary.json").read_bytes())
