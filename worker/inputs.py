"""Input files as people have them: plain or compressed, a path or stdin, lines or a document.

Replay and `produce` read through here, so both accept the same things:
- a path, or `-` for standard input;
- gzip, zstd, bzip2 or xz compression, recognised by magic bytes (not by the
  file name: exports are renamed, and a `.gz` read as text would turn every
  line into a "not UTF-8" dead letter);
- a UTF-8 byte-order mark (Windows tools write one);
- JSON Lines (one record, or one JSON array of records, per line), streamed;
- one JSON document over several lines (a pretty-printed object or an array
  of records, as exported by consoles and APIs), read whole.

A file that cannot be opened or read is `CouldNotRun` (exit 2): the run stops
before any output is published.
"""

from __future__ import annotations

import bz2
import gzip
import io
import itertools
import lzma
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, cast

import orjson

from worker.codec import dumps_line
from worker.errors import CouldNotRun

STDIN = "-"
BOM = b"\xef\xbb\xbf"
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"BZh", "bzip2"),
    (b"\xfd7zXZ\x00", "xz"),
)
MAX_DOCUMENT_BYTES = 512 * 1024 * 1024
"""A multi-line JSON document is parsed whole; larger ones must be JSON Lines."""


@dataclass(frozen=True, slots=True)
class InputFile:
    """One input: a checked path, or standard input."""

    name: str
    path: Path | None

    @property
    def size(self) -> int:
        """Bytes on disk (compressed size for compressed files; 0 for stdin)."""
        return self.path.stat().st_size if self.path is not None else 0


def check_inputs(specs: list[str | Path], out_dir: Path | None = None) -> list[InputFile]:
    """Validate the inputs before anything runs; one clear line for the first problem."""
    inputs: list[InputFile] = []
    if sum(1 for s in specs if str(s) == STDIN) > 1:
        raise CouldNotRun("standard input (-) can be read only once")
    out = out_dir.resolve() if out_dir is not None else None
    for spec in specs:
        if str(spec) == STDIN:
            inputs.append(InputFile("<stdin>", None))
            continue
        path = Path(spec)
        if not path.exists():
            raise CouldNotRun(f"cannot read input file {path}: no such file")
        if path.is_dir():
            raise CouldNotRun(f"cannot read input file {path}: it is a directory")
        try:
            with path.open("rb") as fh:
                fh.read(1)
        except OSError as exc:
            raise CouldNotRun(f"cannot read input file {path}: {exc.strerror}") from None
        if out is not None and out in path.resolve().parents:
            raise CouldNotRun(f"input file {path} is inside the output directory {out_dir}: "
                              "the run would replace it; copy it elsewhere first")
        inputs.append(InputFile(str(path), path))
    return inputs


def compression_of(head: bytes) -> str | None:
    return next((name for magic, name in _MAGIC if head.startswith(magic)), None)


def _decompressed(raw: IO[bytes], kind: str) -> IO[bytes]:
    if kind == "gzip":
        return cast(IO[bytes], gzip.GzipFile(fileobj=raw, mode="rb"))
    if kind == "bzip2":
        return cast(IO[bytes], bz2.BZ2File(raw, mode="rb"))
    if kind == "xz":
        return cast(IO[bytes], lzma.LZMAFile(raw, mode="rb"))
    import zstandard  # noqa: PLC0415 - only for zstd inputs

    return io.BufferedReader(zstandard.ZstdDecompressor().stream_reader(raw))


def open_input(inp: InputFile) -> IO[bytes]:
    """A binary stream of the input's (decompressed) content."""
    raw: IO[bytes]
    if inp.path is None:
        raw = io.BufferedReader(sys.stdin.buffer.raw, 1 << 16) \
            if hasattr(sys.stdin.buffer, "raw") else sys.stdin.buffer
    else:
        raw = inp.path.open("rb", buffering=1 << 16)
    head = raw.peek(8)[:8] if isinstance(raw, io.BufferedReader) else b""
    kind = compression_of(head)
    return _decompressed(raw, kind) if kind is not None else raw


def iter_records(inp: InputFile | Path | str) -> Iterator[tuple[int, bytes]]:
    """(line number, raw record) pairs of one input; see the module doc for the shapes."""
    if not isinstance(inp, InputFile):
        inp = check_inputs([inp])[0]
    try:
        with open_input(inp) as fh:
            yield from _records(fh)
    except CouldNotRun:
        raise
    except Exception as exc:  # OSError, EOFError, a corrupt gzip/zstd/xz/bzip2 stream
        raise CouldNotRun(f"cannot read input {inp.name}: {exc}") from None


def _records(fh: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    first = fh.readline()
    if first.startswith(BOM):
        first = first[len(BOM):]
    stripped = first.lstrip()
    if stripped[:1] in (b"[", b"{") and not _is_json(first):
        yield from _document(first, fh)
        return
    if first:
        yield 1, first
    yield from enumerate(fh, start=2)


def _document(first: bytes, fh: IO[bytes]) -> Iterator[tuple[int, bytes]]:
    """A multi-line JSON document: an array of records, or one (pretty-printed) record.

    Read whole (documents are console/API exports, small by nature). When the
    text is not one document after all -- JSON Lines whose first record is
    broken, or more than `MAX_DOCUMENT_BYTES` -- it is streamed as lines.
    """
    rest = fh.read(MAX_DOCUMENT_BYTES)
    complete = len(rest) < MAX_DOCUMENT_BYTES
    try:
        value = orjson.loads(first + rest) if complete else None
    except orjson.JSONDecodeError:
        value = None
    if value is None:
        lines = rest.splitlines(keepends=True)
        if not complete and lines and not lines[-1].endswith(b"\n"):
            lines[-1] += fh.readline()  # the line the read cut in two
        more: Iterator[bytes] = iter(()) if complete else iter(fh)
        yield from enumerate(itertools.chain((first,), lines, more), start=1)
        return
    if isinstance(value, list):
        for i, item in enumerate(value, start=1):
            yield i, dumps_line(item)[:-1]
        return
    yield 1, dumps_line(value)[:-1]


def _is_json(line: bytes) -> bool:
    try:
        orjson.loads(line)
    except orjson.JSONDecodeError:
        return False
    return True


def is_terminal(stream: IO[str]) -> bool:
    try:
        return stream.isatty() and os.environ.get("TERM") != "dumb"
    except (AttributeError, ValueError):
        return False
