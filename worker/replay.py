"""`sessionwarden replay`: the whole pipeline in-process, file(s) to files.

Streams its input line by line (a 1 GB export is never loaded whole), keeps
baselines in a dict, and writes commands, audit, alerts, dead letters and a
deterministic summary. Two runs over the same input give byte-identical files.

Outputs are written atomically: into a temporary directory next to `--out`,
which replaces `--out` only when the run completed. A failed run leaves the
previous outputs untouched and no partial files, and an input file inside
`--out` is refused before anything is written (it would be replaced).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from detectors import Policy
from worker import parallel
from worker.codec import dumps_line, dumps_pretty
from worker.enrich import Enricher
from worker.errors import CouldNotRun
from worker.inputs import InputFile, check_inputs, is_terminal
from worker.inputs import iter_records as iter_input_records
from worker.pipeline import Outputs, Pipeline
from worker.state import CompactStore

if TYPE_CHECKING:
    from worker.signals.tokens import Signer

OUTPUT_FILES = ("commands.jsonl", "audit.jsonl", "alerts.jsonl", "dead_letter.jsonl",
                "signals.jsonl")
SUMMARY = "summary.json"
JWKS_FILE = "jwks.json"
RUN_FILE = "run.json"
REPORT_FILES = (RUN_FILE, "report.html", "diff.json", ".report.html.tmp", ".diff.json.tmp")
"""Written beside the outputs by the report and `diff` (`worker.report`)."""
FLUSH_EVERY = 2048


def iter_records(path: Path | str | InputFile) -> Iterator[tuple[int, bytes]]:
    """(line number, raw record) pairs of one input (see `worker.inputs`)."""
    return iter_input_records(path)


class Progress:
    """A progress bar on a terminal (rich); silent when the stream is not a terminal.

    Updates are throttled by the caller's batching and rich's own refresh
    rate, so a replay pays nothing per record for it.
    """

    def __init__(self, total_bytes: int, stream: IO[str] | None = None) -> None:
        stream = stream or sys.stderr
        self.enabled = is_terminal(stream)
        self._bar: Any = None
        self._task: Any = None
        if not self.enabled:
            return
        from rich.console import Console  # noqa: PLC0415 - only on a terminal
        from rich.progress import (  # noqa: PLC0415
            BarColumn,
            TaskProgressColumn,
            TextColumn,
            TimeElapsedColumn,
        )
        from rich.progress import Progress as Bar  # noqa: PLC0415

        self._started = time.monotonic()
        self._bar = Bar(TextColumn("[bold]replaying"), BarColumn(), TaskProgressColumn(),
                        TextColumn("{task.fields[records]} records  {task.fields[rate]}/s"),
                        TimeElapsedColumn(), console=Console(file=stream), transient=True)
        self._task = self._bar.add_task("replay", total=max(total_bytes, 1) if total_bytes
                                        else None, records="0", rate="0")
        self._bar.start()

    def update(self, done_bytes: int, events: int) -> None:
        if self._bar is None:
            return
        rate = events / max(time.monotonic() - self._started, 1e-9)
        self._bar.update(self._task, completed=done_bytes, records=f"{events:,}",
                         rate=f"{rate:,.0f}")

    def done(self) -> None:
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


class OutputDir:
    """A directory of outputs that appears whole or not at all.

    Files are written into a fresh temporary directory beside the target;
    `commit` swaps it in (the old directory, if any, is removed after the
    rename). A target that holds anything but earlier sessionwarden outputs is
    refused rather than replaced: `--out ~` must not delete a home directory.
    """

    def __init__(self, target: Path, names: Sequence[str]) -> None:
        self.target = target
        if target.exists() and not target.is_dir():
            raise CouldNotRun(f"--out {target} is a file, not a directory")
        if target.is_dir():
            foreign = sorted(p.name for p in target.iterdir() if p.name not in names)
            if foreign:
                raise CouldNotRun(f"--out {target} holds files that are not replay outputs "
                                  f"({', '.join(foreign[:3])}); choose a new or empty directory")
        parent = target.resolve().parent
        try:
            parent.mkdir(parents=True, exist_ok=True)
            self.tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=parent))
        except OSError as exc:
            raise CouldNotRun(f"cannot write --out {target}: {exc.strerror}") from None

    def path(self, name: str) -> Path:
        return self.tmp / name

    def commit(self) -> None:
        old = None
        if self.target.is_dir():
            old = self.target.resolve().parent / f".{self.target.name}.old-{os.getpid()}"
            self.target.rename(old)
        self.tmp.rename(self.target)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)

    def abort(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


def replay(files: Sequence[Path | str | InputFile], out_dir: Path, policy: Policy,
           enricher: Enricher, fmt: str = "auto", progress_stream: IO[str] | None = None,
           signer: Signer | None = None,
           manifest: dict[str, Any] | None = None, jobs: int = 1) -> dict[str, Any]:
    """Replay files in order into out_dir (atomically); returns the summary dict.

    With a signer, `signals.jsonl` holds the signed SETs and `jwks.json` the
    public key that verifies them; without one, `signals.jsonl` stays empty.
    A manifest (`worker.report.manifest`) is written as `run.json`, for the report.
    `jobs` > 1 shards the work over that many processes (`worker.parallel`), with
    byte-identical outputs; standard input always runs in one process.
    """
    inputs = [f if isinstance(f, InputFile) else check_inputs([f], out_dir)[0] for f in files]
    check_inputs([i.path for i in inputs if i.path is not None], out_dir)
    target = OutputDir(out_dir, [*OUTPUT_FILES, SUMMARY, JWKS_FILE, *REPORT_FILES])
    try:
        if jobs > 1 and parallel.usable(inputs):
            summary = _run_sharded(inputs, target, policy, enricher, fmt, signer, jobs)
        else:
            summary = _run(inputs, target, policy, enricher, fmt, progress_stream, signer)
        if signer is not None:
            target.path(JWKS_FILE).write_bytes(dumps_pretty(signer.jwks()))
        if manifest is not None:
            target.path(RUN_FILE).write_bytes(dumps_pretty(manifest))
        target.path(SUMMARY).write_bytes(dumps_pretty(summary))
    except BaseException:
        target.abort()
        raise
    target.commit()
    return summary


def _run(inputs: Sequence[InputFile], target: OutputDir, policy: Policy, enricher: Enricher,
         fmt: str, progress_stream: IO[str] | None, signer: Signer | None) -> dict[str, Any]:
    pipeline = Pipeline(enricher, policy, fmt, signer)
    store = CompactStore()
    outputs = Outputs()
    total = sum(i.size for i in inputs)
    progress = Progress(total, progress_stream)
    done_bytes = 0
    with ExitStack() as stack:
        sinks = [stack.enter_context(target.path(name).open("wb")) for name in OUTPUT_FILES]
        pending = 0
        for inp in inputs:
            name = inp.name
            for lineno, raw in iter_records(inp):
                pipeline.process(raw, {"file": name, "line": lineno}, store, outputs)
                done_bytes += len(raw)
                pending += 1
                if pending >= FLUSH_EVERY:
                    write_records(outputs, sinks)
                    pending = 0
                    progress.update(done_bytes, pipeline.stats.events_read)
        write_records(outputs, sinks)
    progress.done()
    summary = pipeline.stats.summary(sessions=len(store))
    summary["policy_version"] = policy.version
    return summary


def _run_sharded(inputs: Sequence[InputFile], target: OutputDir, policy: Policy,
                 enricher: Enricher, fmt: str, signer: Signer | None,
                 jobs: int) -> dict[str, Any]:
    with ExitStack() as stack:
        sinks = [stack.enter_context(target.path(name).open("wb")) for name in OUTPUT_FILES]
        stats, sessions = parallel.run_sharded(inputs, target.tmp, sinks, policy, enricher,
                                               fmt, signer, jobs)
    summary = stats.summary(sessions=sessions)
    summary["policy_version"] = policy.version
    return summary


def write_records(outputs: Outputs, sinks: Sequence[IO[bytes]]) -> None:
    """Append the buffered records to their files (in OUTPUT_FILES order) and clear them."""
    commands, audit, alerts, dead, signals = sinks
    for records, sink in ((outputs.commands, commands), (outputs.audit, audit),
                          (outputs.alerts, alerts), (outputs.signals, signals)):
        if records:
            sink.write(b"".join(value + b"\n" for _key, value in records))
    if outputs.dead:
        dead.write(b"".join(map(dumps_line, outputs.dead)))
    outputs.clear()
