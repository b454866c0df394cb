"""Benchmark inputs: the seeded generator's realistic log, and two derived files.

The realistic log comes from `data/generate_events.py --profile bench` (skewed
IP/UA popularity, sessions of 1-50 events, ~1.6 % ASN changes, browser
updates, mid-stream sessions, a small share of malformed lines). Files are
cached under bench/out/ keyed by their arguments and the generator's hash,
so repeated runs skip the generation but never reuse a stale file.
"""

from __future__ import annotations

import hashlib
import subprocess
from pathlib import Path
from typing import Any

import orjson

from bench.common import OUT, PY, REPO, log

GENERATOR = REPO / "data" / "generate_events.py"
SEED = 1


def _generator_hash() -> str:
    return hashlib.sha256(GENERATOR.read_bytes()).hexdigest()[:12]


def generate(events: int, sessions: int, seed: int = SEED, out_dir: Path = OUT) -> Path:
    """A generated native-event log of `events` lines (cached by arguments + generator)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / f"events-{events}-{sessions}-s{seed}-{_generator_hash()}.jsonl"
    if path.is_file():
        return path
    log(f"generating {events:,} events / {sessions:,} sessions -> {path.name}")
    tmp = path.with_suffix(".tmp")
    subprocess.run([PY, str(GENERATOR), "--profile", "bench", "--events", str(events),
                    "--sessions", str(sessions), "--seed", str(seed), "--out", str(tmp)],
                   check=True, stdout=subprocess.DEVNULL)
    tmp.replace(path)
    return path


# A user agent and an address that the bundled databases resolve (corporate
# egress range of the generator); nothing about them trips a detector.
LATENCY_UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 "
              "(KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36")
LATENCY_IP = "81.2.69.161"
LATENCY_T0 = 1_795_996_800_000  # 2026-12-01T00:00:00Z


def latency_event(seq: int, sessions: int, run: str) -> tuple[bytes, str, bytes]:
    """(key, event_id, value) of one at-rate event; each causes exactly one command.

    The organization's idle_session_timeout makes the engine re-issue
    `set_idle_expires_at` on every event of the session (event time + timeout
    changes with every event), so the command's cause_event_id identifies it.
    """
    sid = f"lat-{run}-{seq % sessions}"
    event_id = f"lat-{run}-{seq}"
    doc: dict[str, Any] = {
        "event_id": event_id,
        "type": "login" if seq < sessions else "interaction",
        "occurred_at": LATENCY_T0 + seq,
        "tenant": "bench",
        "session": {"id": sid},
        "user": {"id": f"auth0|{seq % sessions}"},
        "client_id": "bench-app",
        "organization": {"id": "org_bench", "metadata": {"idle_session_timeout": "900000"}},
        "request": {"ip": LATENCY_IP, "user_agent": LATENCY_UA},
    }
    return sid.encode(), event_id, orjson.dumps(doc)
