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

import copy
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from detectors import Baseline
from detectors.model import UserProfile
from worker.codec import (
    baseline_from_bytes,
    baseline_to_bytes,
    profile_from_bytes,
    profile_to_bytes,
)
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


PROFILE_PREFIX = "\x00profile\x00"
"""User profiles share the baselines' table (and changelog, partitions, recovery) under
keys no session id can have: session ids with a NUL are dead letters (formats.limits)."""


class BatchStore:
    """A batch-local baseline store that reads through to the real table.

    Within a batch it behaves like replay's `MemoryStore`: `get` hands out
    the live object (decoded from the table's bytes once per key and batch),
    and the engine updates it in place. Nothing is encoded per event and
    nothing is written to the table here: `writes` encodes each written
    key's final object once, for the caller to apply after the batch's
    outputs are delivered. A record whose processing fails cannot be undone
    in place; `evaluate_batch` evaluates the batch again without it.
    """

    def __init__(self, read: Callable[[str, int], bytes | None]) -> None:
        self._read = read
        self._live: dict[str, Any] = {}
        self._written: dict[str, int] = {}
        self.index = 0

    def begin(self, index: int) -> None:
        """Start input record `index`: later writes are tagged with it."""
        self.index = index

    def _get(self, key: str, decode: Callable[[bytes], Any]) -> Any:
        live = self._live
        if key in live:
            return live[key]
        data = self._read(key, self.index)
        value = live[key] = None if data is None else decode(data)
        return value

    def get(self, key: str, /) -> Baseline | None:
        value: Baseline | None = self._get(key, baseline_from_bytes)
        return value

    def __setitem__(self, key: str, value: Baseline, /) -> None:
        self._live[key] = value
        self._written[key] = self.index

    def get_profile(self, key: str, /) -> UserProfile | None:
        value: UserProfile | None = self._get(PROFILE_PREFIX + key, profile_from_bytes)
        return value

    def set_profile(self, key: str, value: UserProfile, /) -> None:
        key = PROFILE_PREFIX + key
        self._live[key] = value
        self._written[key] = self.index

    @property
    def writes(self) -> dict[str, tuple[bytes, int]]:
        """key -> (encoded final value, index of the input record that wrote it last)."""
        live = self._live
        return {key: (profile_to_bytes(live[key]) if key.startswith(PROFILE_PREFIX)
                      else baseline_to_bytes(live[key]), index)
                for key, index in self._written.items()}


class _RecordFailed(Exception):
    def __init__(self, index: int, error: Exception) -> None:
        super().__init__(index, error)
        self.index = index
        self.error = error


def origin_of(message: InputMessage) -> dict[str, Any]:
    """Where a record came from, as dead letters and DLQ headers report it."""
    return {"topic": message.topic, "partition": message.partition, "offset": message.offset,
            "timestamp": message.timestamp}


def evaluate_batch(messages: Sequence[InputMessage], pipeline: Pipeline,
                   read: Callable[[str, int], bytes | None],
                   rejected: Mapping[int, str] | None = None) -> BatchResult:
    """Run each message through the pipeline, in order, against a batch-local store.

    A record that makes the pipeline raise (a bug, not bad input: bad input is
    an Invalid outcome) is dead-lettered, so one poison record cannot stall
    its partition; the batch is then evaluated again from the table's state
    (and the pipeline's counters from before the batch) without it, so it
    leaves nothing behind. `rejected` names input records whose outputs the
    broker refused in an earlier round: they are dead-lettered with that
    reason instead of being decided (and retried) again.
    """
    before = copy.deepcopy(pipeline.stats)
    failed: dict[int, tuple[str, str]] = {}
    while True:
        try:
            return _evaluate(messages, pipeline, read, rejected or {}, failed)
        except _RecordFailed as exc:
            log.error("pipeline failed on a record; dead-lettering it",
                      exc_info=exc.error, extra={"origin": origin_of(messages[exc.index])})
            name = type(exc.error).__name__
            failed[exc.index] = (name, f"internal error: {name}: {exc.error}")
            pipeline.stats = copy.deepcopy(before)


def _evaluate(messages: Sequence[InputMessage], pipeline: Pipeline,
              read: Callable[[str, int], bytes | None], rejected: Mapping[int, str],
              failed: Mapping[int, tuple[str, str]]) -> BatchResult:
    store = BatchStore(read)
    out = Outputs()
    result = BatchResult()
    emitted = result.emitted
    stats = pipeline.stats
    process = pipeline.process
    for index, message in enumerate(messages):
        store.begin(index)
        raw = message.value or b""
        origin = origin_of(message)
        if message.key is None:
            result.unkeyed += 1
        if index in failed:
            name, reason = failed[index]
            result.internal_errors += 1
            stats.dead_letters += 1
            stats.dead_by_reason[f"internal: {name}"] += 1
            out.dead.append(dead_letter(raw, reason, "unknown", origin))
        elif index in rejected:
            stats.dead_letters += 1
            stats.dead_by_reason["broker: output rejected"] += 1
            out.dead.append(dead_letter(raw, rejected[index], "unknown", origin))
        else:
            try:
                process(raw, origin, store, out)
            except Exception as exc:
                raise _RecordFailed(index, exc) from exc
        if out.commands or out.audit or out.alerts or out.signals:
            for kind, records in (("commands", out.commands), ("audit", out.audit),
                                  ("alerts", out.alerts), ("signals", out.signals)):
                for key, value in records:
                    emitted.append(Emitted(kind, key, value, (), index))
        for dead in out.dead:
            emitted.append(Emitted("dlq", message.key, raw, dlq_headers(dead), index))
        out.clear()
    result.writes = store.writes
    return result
