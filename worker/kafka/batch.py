"""One input batch through the shared Pipeline, with no Kafka in sight.

The worker must publish a batch's outputs *before* its baselines reach the
table (and so the changelog): the engine drops re-delivered event ids that
are already in a baseline, so a stored baseline whose commands were never
delivered would lose those commands for good. This module therefore
evaluates against a batch-local, read-through copy of the baselines and
hands back (a) the records to publish and (b) the baseline writes, each
tagged with the index of the input record that made it, so the caller can
write it to the changelog partition of its own source record.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from detectors import Baseline
from worker.codec import baseline_from_bytes, baseline_to_bytes
from worker.pipeline import Outputs, Pipeline, dead_letter

log = logging.getLogger("sessionwarden.batch")

Header = tuple[str, bytes]
HEADER_PREFIX = "sessionwarden."
MAX_HEADER_TEXT = 1024
"""Dead-letter reasons are cut to this many characters in the Kafka header."""


class InputMessage(Protocol):
    """The fields of a consumed Kafka record the batch needs (Faust's Message has them)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    timestamp: float | None


@dataclass(slots=True, frozen=True)
class Emitted:
    """One record to publish: output kind (commands|audit|alerts|signals|dlq), key, value."""

    kind: str
    key: bytes | None
    value: bytes
    headers: tuple[Header, ...] = ()
    index: int = 0
    """The input record (position in the batch) that made it."""


@dataclass(slots=True)
class BatchResult:
    """What a batch produced: records to publish first, then baseline writes."""

    emitted: list[Emitted] = field(default_factory=list)
    writes: dict[str, tuple[bytes, int]] = field(default_factory=dict)
    """session id -> (baseline bytes, index of the input record that wrote it last)."""
    internal_errors: int = 0
    unkeyed: int = 0


def _text(value: object) -> bytes:
    return str(value)[:MAX_HEADER_TEXT].encode("utf-8", errors="replace")


def dlq_headers(dead: Mapping[str, Any]) -> tuple[Header, ...]:
    """Kafka headers of a dead-letter record: why, which format, and where it came from.

    The value stays the original bytes, so a fixed consumer can re-publish it
    unchanged; everything we know about the failure travels in headers.
    """
    error = str(dead.get("error") or "unknown error")
    headers: list[Header] = [
        (f"{HEADER_PREFIX}error", _text(error)),
        (f"{HEADER_PREFIX}error_class", _text(error.split(":", 1)[0])),
        (f"{HEADER_PREFIX}source", _text(dead.get("source") or "unknown")),
    ]
    origin = dead.get("origin")
    if isinstance(origin, Mapping):
        for name in ("topic", "partition", "offset", "timestamp"):
            value = origin.get(name)
            if value is not None:
                headers.append((f"{HEADER_PREFIX}origin.{name}", _text(value)))
    return tuple(headers)


_MISSING = object()


class BatchStore:
    """A batch-local baseline store that reads through to the real table.

    `get` returns a fresh Baseline decoded from bytes (the engine mutates what
    it gets), so a record whose processing fails can be rolled back exactly.
    Nothing is written to the table here: `writes` is applied by the caller
    after the batch's outputs are delivered.
    """

    def __init__(self, read: Callable[[str, int], bytes | None]) -> None:
        self._read = read
        self._cache: dict[str, bytes | None] = {}
        self.writes: dict[str, tuple[bytes, int]] = {}
        self.index = 0
        self._undo: dict[str, tuple[object, tuple[bytes, int] | None]] = {}

    def begin(self, index: int) -> None:
        """Start input record `index`: later writes are tagged with it."""
        self.index = index
        self._undo = {}

    def get(self, key: str, /) -> Baseline | None:
        if key in self._cache:
            data = self._cache[key]
        else:
            data = self._cache[key] = self._read(key, self.index)
        return None if data is None else baseline_from_bytes(data)

    def __setitem__(self, key: str, value: Baseline, /) -> None:
        if key not in self._undo:
            self._undo[key] = (self._cache.get(key, _MISSING), self.writes.get(key))
        data = baseline_to_bytes(value)
        self._cache[key] = data
        self.writes[key] = (data, self.index)

    def rollback(self) -> None:
        """Undo the writes of the current input record."""
        for key, (cached, write) in self._undo.items():
            if cached is _MISSING:
                self._cache.pop(key, None)
            else:
                self._cache[key] = cached  # type: ignore[assignment]
            if write is None:
                self.writes.pop(key, None)
            else:
                self.writes[key] = write
        self._undo = {}


def origin_of(message: InputMessage) -> dict[str, Any]:
    """Where a record came from, as dead letters and DLQ headers report it."""
    return {"topic": message.topic, "partition": message.partition, "offset": message.offset,
            "timestamp": message.timestamp}


def evaluate_batch(messages: Sequence[InputMessage], pipeline: Pipeline,
                   read: Callable[[str, int], bytes | None],
                   rejected: Mapping[int, str] | None = None) -> BatchResult:
    """Run each message through the pipeline, in order, against a batch-local store.

    A record that makes the pipeline raise (a bug, not bad input: bad input is
    an Invalid outcome) is rolled back and dead-lettered, so one poison
    record cannot stall its partition. `rejected` names input records whose
    outputs the broker refused in an earlier round: they are dead-lettered
    with that reason instead of being decided (and retried) again.
    """
    store = BatchStore(read)
    out = Outputs()
    result = BatchResult()
    emitted = result.emitted
    stats = pipeline.stats
    for index, message in enumerate(messages):
        store.begin(index)
        raw = message.value or b""
        origin = origin_of(message)
        if message.key is None:
            result.unkeyed += 1
        try:
            if rejected and index in rejected:
                stats.dead_letters += 1
                stats.dead_by_reason["broker: output rejected"] += 1
                out.dead.append(dead_letter(raw, rejected[index], "unknown", origin))
            else:
                pipeline.process(raw, origin, store, out)
        except Exception as exc:
            log.exception("pipeline failed on a record; dead-lettering it",
                          extra={"origin": origin})
            store.rollback()
            out.clear()
            result.internal_errors += 1
            reason = f"internal error: {type(exc).__name__}: {exc}"
            stats.dead_letters += 1
            stats.dead_by_reason[f"internal: {type(exc).__name__}"] += 1
            out.dead.append(dead_letter(raw, reason, "unknown", origin))
        for kind, records in (("commands", out.commands), ("audit", out.audit),
                              ("alerts", out.alerts), ("signals", out.signals)):
            for key, value in records:
                emitted.append(Emitted(kind, key, value, (), index))
        for dead in out.dead:
            emitted.append(Emitted("dlq", message.key, raw, dlq_headers(dead), index))
        out.clear()
    result.writes = store.writes
    return result
