"""Outcome types shared by every input adapter.

An adapter turns one decoded record into exactly one of: a SessionEvent (to
the engine), a Skip (a valid record that is not session activity: counted,
never dead-lettered) or an Invalid (a malformed record: dead-lettered with the
reason). Returning values instead of raising keeps the hot path cheap.
"""

from __future__ import annotations

import hashlib
import ipaddress
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import orjson

from detectors.model import SessionEvent
from detectors.timefmt import parse_time


@dataclass(slots=True, frozen=True)
class Skip:
    """A well-formed record that carries no session activity."""

    reason: str
    source: str


@dataclass(slots=True, frozen=True)
class Invalid:
    """A record that cannot be used; goes to the dead-letter output."""

    reason: str
    source: str = "unknown"


Outcome = SessionEvent | Skip | Invalid


class InvalidRecord(ValueError):
    """Raised inside adapters; turned into an Invalid by the dispatcher."""


@lru_cache(maxsize=65536)
def canonical_ip(value: str) -> str | None:
    """The canonical text of an IP address, or None when it is not one.

    Cached: the same addresses repeat all day long in login streams.
    """
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def require_ip(value: object, field_name: str) -> str:
    """Validate an IP field, raising InvalidRecord with a precise reason."""
    if not isinstance(value, str) or not value:
        raise InvalidRecord(f"{field_name} missing or not a string")
    ip = canonical_ip(value)
    if ip is None:
        raise InvalidRecord(f"{field_name} is not an IP address: {value[:64]!r}")
    return ip


def as_dict(value: object) -> dict[str, Any]:
    """An optional nested object: a dict, or empty when absent or null."""
    return value if isinstance(value, dict) else {}


def opt_str(value: object) -> str | None:
    """An optional string field; other JSON types are stringified, null stays None."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    return None


def parse_asn(value: object) -> int | None:
    """An ASN as IdPs write it: 1221, "1221", "AS1221", "as1221"; None if absent or odd."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 < value < 2**32 else None
    if isinstance(value, str):
        text = value.strip()
        if text[:2].upper() == "AS":
            text = text[2:]
        if text.isascii() and text.isdigit():  # "²".isdigit() is True, int() fails
            n = int(text)
            return n if 0 < n < 2**32 else None
    return None


def stable_id(prefix: str, value: object) -> str:
    """A deterministic event id for records that carry none.

    Hash of the canonical JSON (sorted keys), so a re-delivered copy of the
    same record gets the same id and the engine's per-session dedupe drops it.
    """
    try:
        raw = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # not JSON-serialisable (only from non-JSON callers)
        raw = repr(value).encode("utf-8", "surrogatepass")
    return f"{prefix}-{hashlib.sha256(raw).hexdigest()[:32]}"


_ABSENT = frozenset({"", "null", "none", "unknown", "-"})


def absent(value: object) -> bool:
    """True for the ways IdPs write "no value": null, "", "null", "unknown", "-"."""
    return value is None or (isinstance(value, str) and value.strip().lower() in _ABSENT)


def opt_text(value: object) -> str | None:
    """Like `opt_str`, but placeholder spellings of "no value" are None too."""
    return None if absent(value) else opt_str(value)


def optional_ip(value: object, field_name: str) -> str | None:
    """An IP that may legitimately be missing: None when absent, InvalidRecord when garbage.

    Missing (Okta's "null" string, Keycloak's null) is not malformed input: the
    caller skips the event. A present value that is not an IP is malformed.
    """
    if absent(value):
        return None
    return require_ip(value, field_name)


def require_time(value: object, field_name: str) -> int:
    """An event timestamp in epoch ms, or InvalidRecord naming the field."""
    if absent(value):
        raise InvalidRecord(f"{field_name} missing")
    try:
        return parse_time(value)
    except (ValueError, OverflowError) as exc:  # TimeFormatError is a ValueError
        raise InvalidRecord(f"{field_name}: {exc}"[:200]) from None
