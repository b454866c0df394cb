"""Input formats: detect each record's IdP format and normalize it.

One entry point, `decode_line`, used by replay and by the Kafka worker alike,
so both see exactly the same events. Each adapter module provides
`looks_like(record) -> bool` and `normalize(record) -> Outcome`, optionally
`normalize_text` (text log lines) and `split` (batch envelopes). Whole-file
JSON documents are split into records by `worker.replay.iter_records`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple, TypeGuard

import orjson

from detectors.model import SessionEvent
from worker.formats import native
from worker.formats.base import Invalid, InvalidRecord, Outcome, Skip
from worker.formats.limits import enforce_limits

__all__ = [
    "FORMATS",
    "Invalid",
    "Outcome",
    "Skip",
    "decode_line",
    "decode_record",
]


class Adapter(NamedTuple):
    name: str
    looks_like: Callable[[dict[str, Any]], bool]
    normalize: Callable[[dict[str, Any]], Outcome]
    normalize_text: Callable[[str], Outcome] | None = None
    """For formats that also come as plain text lines (Keycloak's server log)."""
    split: Callable[[dict[str, Any]], list[Any] | None] | None = None
    """For envelopes that batch several records (Okta event hooks): the records, else None."""


def _native(record: dict[str, Any]) -> Outcome:
    return native.normalize_native(record)


ADAPTERS: dict[str, Adapter] = {
    "native": Adapter("native", native.looks_native, _native),
}


def _register_vendor_adapters() -> None:
    """Vendor adapters register here; order matters for auto-detection."""
    from worker.formats import auth0, keycloak, okta  # noqa: PLC0415

    for module in (auth0, okta, keycloak):
        adapter: Adapter = module.ADAPTER
        ADAPTERS[adapter.name] = adapter


# Not guarded: a broken adapter must fail loudly, not turn every record "unrecognised".
_register_vendor_adapters()

FORMATS: tuple[str, ...] = ("auto", *ADAPTERS)
_SPLITTERS = tuple(a.split for a in ADAPTERS.values() if a.split is not None)


def decode_record(record: object, fmt: str = "auto") -> Outcome:
    """Normalize one decoded JSON value of the given (or detected) format."""
    if not isinstance(record, dict):
        return Invalid(f"record is a JSON {type(record).__name__}, not an object")
    try:
        if fmt != "auto":
            return _within_limits(ADAPTERS[fmt].normalize(record))
        for adapter in ADAPTERS.values():
            if adapter.looks_like(record):
                return _within_limits(adapter.normalize(record))
    except InvalidRecord as exc:
        return Invalid(str(exc), adapter.name if fmt == "auto" else fmt)
    return Invalid("unrecognised record: not native, auth0, okta or keycloak")


def _within_limits(outcome: Outcome) -> Outcome:
    """Every event, of every format, passes the field limits (`worker.formats.limits`)."""
    return enforce_limits(outcome) if isinstance(outcome, SessionEvent) else outcome


def decode_text(text: str, fmt: str = "auto") -> Outcome:
    """A line that is not JSON: a text-format event, or garbage."""
    candidates = [ADAPTERS[fmt]] if fmt != "auto" else list(ADAPTERS.values())
    for adapter in candidates:
        if adapter.normalize_text is not None:
            try:
                return _within_limits(adapter.normalize_text(text))
            except InvalidRecord as exc:
                reason = str(exc)
                # Auto-detection: garbage text is nobody's malformed record.
                unknown = fmt == "auto" and reason.startswith("not JSON")
                return Invalid(reason, "unknown" if unknown else adapter.name)
    return Invalid(f"not JSON: {text[:80]!r}")


def _expand(value: object, fmt: str) -> list[object]:
    """A decoded JSON value as the records it holds (batch envelopes are split)."""
    if isinstance(value, dict):
        candidates = [ADAPTERS[fmt]] if fmt != "auto" else list(ADAPTERS.values())
        for adapter in candidates:
            if adapter.split is not None:
                parts = adapter.split(value)
                if parts is not None:
                    return parts
    return [value]


def native_candidate(value: object) -> TypeGuard[dict[str, Any]]:
    """A record auto-detection hands to the native adapter, and to it alone.

    Native is the first format tried, and no envelope splitter claims the record.
    """
    if type(value) is not dict or not native.looks_native(value):
        return False
    return all(split(value) is None for split in _SPLITTERS)


def _decode_value(value: object, fmt: str) -> list[Outcome]:
    """Outcomes of one parsed JSON value: an object, or an array of objects."""
    if fmt == "auto" and native_candidate(value):
        # The common case, same result as the generic path below.
        try:
            event = native.fast_native(value) or native.normalize_native(value)
            return [enforce_limits(event)]
        except InvalidRecord as exc:
            return [Invalid(str(exc), "native")]
    if isinstance(value, list):
        if not value:
            return [Skip("empty JSON array", "unknown")]
        return [decode_record(r, fmt) for item in value for r in _expand(item, fmt)]
    records = _expand(value, fmt)
    if not records:
        return [Skip("empty batch envelope", "unknown")]
    return [decode_record(r, fmt) for r in records]


def decode_line(line: bytes, fmt: str = "auto") -> list[Outcome]:
    """Decode one input line (or Kafka message value) into outcomes.

    A line usually holds one record; a JSON array line holds several.
    """
    stripped = line.strip()
    if not stripped:
        return [Invalid("empty record")]
    first = stripped[:1]
    if first in (b"{", b"["):
        try:
            value = orjson.loads(stripped)
        except orjson.JSONDecodeError as exc:
            return [Invalid(f"not JSON: {exc}")]
        return _decode_value(value, fmt)
    try:
        text = stripped.decode("utf-8")
    except UnicodeDecodeError as exc:
        return [Invalid(f"not UTF-8: {exc}")]
    if first == b'"' or first.isdigit() or text in ("null", "true", "false"):
        try:
            orjson.loads(stripped)
            return [Invalid("record is a JSON scalar, not an object")]
        except orjson.JSONDecodeError:
            pass
    return [decode_text(text, fmt)]


def is_event(outcome: Outcome) -> bool:
    return isinstance(outcome, SessionEvent)
