"""`sessionwarden replay`: the whole pipeline in-process, file(s) to files.

Streams its input line by line (a 1 GB export is never loaded whole), keeps
baselines in a dict, and writes commands, audit, alerts, dead letters and a
deterministic summary. Two runs over the same input give byte-identical files.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from detectors import Baseline, Policy
from worker.codec import dumps_line, dumps_pretty, loads
from worker.enrich import Enricher
from worker.pipeline import Outputs, Pipeline

if TYPE_CHECKING:
    from worker.signals.tokens import Signer

OUTPUT_FILES = ("commands.jsonl", "audit.jsonl", "alerts.jsonl", "dead_letter.jsonl",
                "signals.jsonl")
JWKS_FILE = "jwks.json"
FLUSH_EVERY = 2048


def iter_records(path: Path) -> Iterator[tuple[int, bytes]]:
    """(line number, raw record) pairs of one input file.

    JSON Lines (one record, or one JSON array of records, per line) is
    streamed. A file that is one multi-line JSON array (an exported array of
    Auth0 logs, say) is read whole: such exports are small by nature.
    """
    with path.open("rb") as fh:
        first = fh.readline()
        if first.lstrip().startswith(b"[") and not _is_json(first):
            rest = fh.read()
            try:
                items = loads(first + rest)
            except ValueError:
                yield 1, first
                for n, line in enumerate(rest.splitlines(), start=2):
                    yield n, line
                return
            if isinstance(items, list):
                for i, item in enumerate(items, start=1):
                    yield i, dumps_line(item)[:-1]
                return
            yield 1, first + rest
            return
        if first:
            yield 1, first
        for n, line in enumerate(fh, start=2):
            yield n, line


def _is_json(line: bytes) -> bool:
    try:
        loads(line)
    except ValueError:
        return False
    return True


class Progress:
    """A one-line progress display on a terminal; silent otherwise."""

    def __init__(self, total_bytes: int, stream: IO[str]) -> None:
        self.total = max(total_bytes, 1)
        self.stream = stream
        self.enabled = stream.isatty()
        self.started = time.monotonic()
        self.next_at = self.started + 0.5

    def update(self, done_bytes: int, events: int) -> None:
        now = time.monotonic()
        if not self.enabled or now < self.next_at:
            return
        self.next_at = now + 0.5
        rate = events / max(now - self.started, 1e-9)
        self.stream.write(f"\r  {100 * done_bytes / self.total:5.1f}%  {events:,} records  "
                          f"{rate:,.0f}/s ")
        self.stream.flush()

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\r" + " " * 60 + "\r")
            self.stream.flush()


def replay(files: list[Path], out_dir: Path, policy: Policy, enricher: Enricher,
           fmt: str = "auto", progress_stream: IO[str] | None = None,
           signer: Signer | None = None) -> dict[str, Any]:
    """Replay files in order into out_dir; returns the summary dict.

    With a signer, `signals.jsonl` holds the signed SETs and `jwks.json` the
    public key that verifies them; without one, `signals.jsonl` stays empty.
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    pipeline = Pipeline(enricher, policy, fmt, signer)
    store: dict[str, Baseline] = {}
    outputs = Outputs()
    total = sum(p.stat().st_size for p in files)
    progress = Progress(total, progress_stream or sys.stderr)
    done_bytes = 0
    with ExitStack() as stack:
        sinks = [stack.enter_context((out_dir / name).open("wb")) for name in OUTPUT_FILES]
        pending = 0
        for path in files:
            name = str(path)
            for lineno, raw in iter_records(path):
                pipeline.process(raw, {"file": name, "line": lineno}, store, outputs)
                done_bytes += len(raw)
                pending += 1
                if pending >= FLUSH_EVERY:
                    _flush(outputs, sinks)
                    pending = 0
                    progress.update(done_bytes, pipeline.stats.events_read)
        _flush(outputs, sinks)
    progress.done()
    summary = pipeline.stats.summary(sessions=len(store))
    summary["policy_version"] = policy.version
    if signer is not None:
        (out_dir / JWKS_FILE).write_bytes(dumps_pretty(signer.jwks()))
    (out_dir / "summary.json").write_bytes(dumps_pretty(summary))
    return summary


def _flush(outputs: Outputs, sinks: Sequence[IO[bytes]]) -> None:
    for records, sink in zip((outputs.commands, outputs.audit, outputs.alerts, outputs.dead,
                              outputs.signals), sinks, strict=True):
        if records:
            sink.write(b"".join(map(dumps_line, records)))
    outputs.clear()
