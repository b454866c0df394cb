"""Timestamp parsing and formatting shared by the core and the adapters.

Everything inside runs on integer epoch milliseconds; text appears only at the
edges. Parsing is strict enough to reject garbage but accepts what IdPs emit:
ISO-8601 with `Z` or an offset, 0-9 fractional digits, a space instead of `T`
(Panther-normalised exports) and epoch numbers (Keycloak's `time`).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from functools import lru_cache

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ISO = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?"
    r"\s*(Z|z|UTC|[+-]\d{2}:?\d{2})?"
)
MAX_MS = 253402300799999
"""9999-12-31T23:59:59.999Z, the last instant ISO-8601 text can hold."""
# Epoch values above this are milliseconds, below it seconds (year 2286 in s).
_MS_THRESHOLD = 10_000_000_000


class TimeFormatError(ValueError):
    """A timestamp that cannot be read; the record goes to the dead letters."""


def parse_time(value: object) -> int:
    """Parse an IdP timestamp into epoch milliseconds (UTC)."""
    if type(value) is str:
        fast = _fast_iso(value)  # C speed, uncached: caching unique event times churns the LRU
        return fast if fast is not None else _parse_text(value)
    if isinstance(value, bool):
        raise TimeFormatError(f"not a timestamp: {value!r}")
    if isinstance(value, int | float):
        if not 0 <= value < float("inf"):  # NaN, negative or infinite
            raise TimeFormatError(f"not a timestamp: {value!r}")
        ms = int(value) if value >= _MS_THRESHOLD else int(value * 1000)
        if ms > MAX_MS:
            raise TimeFormatError(f"timestamp out of range: {value!r}")
        return ms
    if not isinstance(value, str):
        raise TimeFormatError(f"not a timestamp: {value!r}")
    return _parse_text(value)


@lru_cache(maxsize=65536)
def _parse_text(value: str) -> int:
    """Text timestamps, cached: a session's created/authenticated/expiry times repeat."""
    fast = _fast_iso(value)
    if fast is not None:
        return fast
    text = value.strip()
    if text.isascii() and text.isdigit():
        return parse_time(int(text))
    m = _ISO.fullmatch(text)
    if m is None:
        raise TimeFormatError(f"unparseable time: {value!r}")
    year, month, day, hour, minute, second, frac, tz = m.groups()
    leap = second == "60"  # RFC 3339 allows a leap second; POSIX time folds it forward
    try:
        dt = datetime(int(year), int(month), int(day), int(hour), int(minute),
                      59 if leap else int(second or 0), tzinfo=UTC)
    except ValueError as exc:
        raise TimeFormatError(f"invalid time {value!r}: {exc}") from None
    millis = int((frac or "0")[:3].ljust(3, "0"))
    offset = 0
    if tz and tz[0] in "+-":
        digits = tz[1:].replace(":", "")
        hours, minutes = int(digits[:2]), int(digits[2:])
        if hours > 23 or minutes > 59:  # RFC 3339 time-numoffset: 00-23 ":" 00-59
            raise TimeFormatError(f"invalid UTC offset {tz!r} in {value!r}")
        offset = (hours * 60 + minutes) * 60_000
        if tz[0] == "-":
            offset = -offset
    delta = dt - _EPOCH
    return (delta.days * 86_400 + delta.seconds + leap) * 1000 + millis - offset


@lru_cache(maxsize=8192)
def format_time(ms: int) -> str:
    """Format epoch milliseconds as ISO-8601 UTC with milliseconds and `Z`.

    Cached: one event's time is formatted several times (command, audit, alert).
    Values outside years 1970-9999 are clamped to that range (absurd inputs
    such as a metadata timeout of 10^18 ms must not crash the pipeline).
    """
    ms = min(max(ms, 0), MAX_MS)
    day, rest = divmod(ms, 86_400_000)
    secs, millis = divmod(rest, 1000)
    hours, secs = divmod(secs, 3600)
    minutes, secs = divmod(secs, 60)
    return f"{_day_text(day)}T{hours:02d}:{minutes:02d}:{secs:02d}.{millis:03d}Z"


@lru_cache(maxsize=4096)
def _day_text(day: int) -> str:
    return (_EPOCH + timedelta(days=day)).strftime("%Y-%m-%d")


_FROMISO = datetime.fromisoformat
_ONE_MS = timedelta(milliseconds=1)


def _fast_iso(text: str) -> int | None:
    """The common `YYYY-MM-DDTHH:MM:SS[.fff]Z` shape, parsed by C `datetime.fromisoformat`.

    The shape is checked first, so the C parser never sees the extra forms it
    accepts (week dates, comma fractions, `HH:MM.f`) that the regex rejects.
    """
    n = len(text)
    if (n not in (20, 24) or text[-1] != "Z" or text[10] != "T" or text[4] != "-"
            or text[7] != "-" or text[13] != ":" or text[16] != ":"
            or (n == 24 and text[19] != ".") or not text.isascii()):
        return None
    try:
        return (_FROMISO(text) - _EPOCH) // _ONE_MS
    except ValueError:
        return None
