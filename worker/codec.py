"""The one JSON codec for everything on the wire and on disk (orjson).

Output records are dicts with a fixed key order; orjson writes them
deterministically, which is what makes replay byte-identical across runs.
"""

from __future__ import annotations

import ipaddress
import operator
import socket
from collections.abc import Callable
from dataclasses import MISSING, fields
from functools import lru_cache
from typing import Any

import msgspec
import orjson

from detectors.model import PROFILE_KINDS, Baseline, Seen, UserProfile

loads = orjson.loads
JSONDecodeError = orjson.JSONDecodeError


def dumps(value: Any) -> bytes:
    """Compact JSON bytes."""
    return orjson.dumps(value)


def dumps_line(value: Any) -> bytes:
    """One JSON Lines record, newline included."""
    return orjson.dumps(value, option=orjson.OPT_APPEND_NEWLINE)


def dumps_pretty(value: Any) -> bytes:
    """Indented JSON for files people read (summary.json)."""
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE)


_REQUIRED = object()
_BASELINE_NAMES = tuple(f.name for f in fields(Baseline))
_BASELINE_FIELDS = frozenset(_BASELINE_NAMES)
_BASELINE_DEFAULTS = tuple(
    f.default if f.default is not MISSING else f.default_factory() if f.default_factory
    is not MISSING else _REQUIRED for f in fields(Baseline))
BASELINE_FORMAT = 2
"""The current baseline encoding: see `baseline_to_bytes`. Readers take every older one."""
BASELINE_JSON_FORMAT = 1
"""Baselines were stored as JSON, `[1, field, field, ...]` in field order (and before that
as an object with field names); both still load. Append new fields at the end of
`Baseline` (with defaults) to stay readable; older, shorter records take the defaults."""
VERSION_BYTE = b"\x02"
"""First byte of a binary (msgpack) record. JSON records start with `[` or `{`."""

_IP_FIELDS = frozenset({"initial_ip", "last_ip", "last_ip_located"})
_TIME_FIELDS = frozenset({"authenticated_at", "last_interacted_at", "last_geo_at",
                          "expires_at", "idle_expires_at", "revoked_at", "step_up_at"})
"""Stored as the difference to `created_at` (small integers instead of 13-digit ones)."""
_INDEX = {name: i for i, name in enumerate(_BASELINE_NAMES)}
_ALL_FIELDS = operator.attrgetter(*_BASELINE_NAMES)
_I_CREATED = _INDEX["created_at"]
_I_TIMES = tuple(sorted(_INDEX[n] for n in _TIME_FIELDS))
_I_IPS = tuple(sorted(_INDEX[n] for n in _IP_FIELDS))
_I_SEEN_IPS = _INDEX["seen_ips"]
_I_EVENT_IDS = _INDEX["recent_event_ids"]
_I_INITIAL_UA = _INDEX["initial_user_agent"]
_I_LAST_UA = _INDEX["last_user_agent"]
_I_TUPLES = (_INDEX["last_agent_version"], _INDEX["position"])


def _fresh(f: Any) -> Callable[[], Any]:
    if f.default_factory is not MISSING:
        return f.default_factory  # type: ignore[no-any-return]
    default = f.default
    return lambda: default


_BASELINE_FRESH = tuple(_fresh(f) for f in fields(Baseline))
"""Per field, what a record that leaves it out gets (a new list for list fields)."""
_REQUIRED_COUNT = sum(1 for f in fields(Baseline)
                      if f.default is MISSING and f.default_factory is MISSING)
"""Required fields come first and are never left out."""
_SAME_AS_INITIAL = 0
"""`last_user_agent` stored as this marker when it equals `initial_user_agent` (the usual)."""
_HEX16 = frozenset("0123456789abcdef")
_encode = msgspec.msgpack.Encoder().encode
_decode = msgspec.msgpack.Decoder().decode


@lru_cache(maxsize=65536)
def _pack_ip(ip: str) -> bytes | str:
    """4 or 16 bytes for a canonical address (what the engine stores); else the text."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    return addr.packed if str(addr) == ip else ip


@lru_cache(maxsize=65536)
def _unpack_ip(value: bytes | str) -> str:
    if isinstance(value, str):
        return value
    if len(value) == 4:  # C, and the same dotted quad ipaddress writes
        return socket.inet_ntop(socket.AF_INET, value)
    return str(ipaddress.ip_address(value))


_UA_TOKENS = (
    # Longest first; a fixed list forever (append only: it is part of format 2).
    " AppleWebKit/537.36 (KHTML, like Gecko) Chrome/",
    " AppleWebKit/605.1.15 (KHTML, like Gecko) Version/",
    "Macintosh; Intel Mac OS X 10_15_7)",
    " Mobile/15E148 Safari/604.1",
    "Windows NT 10.0; Win64; x64",
    " Mobile Safari/537.36",
    " Gecko/20100101 Firefox/",
    ".0.0.0 Safari/537.36",
    " Safari/605.1.15",
    "X11; Linux x86_64)",
    "iPhone; CPU iPhone OS ",
    " like Mac OS X)",
    "Mozilla/5.0 (",
    "Linux; Android ",
    " Safari/537.36",
    " Edg/",
    "; rv:",
)
_UA_CODES = tuple(chr(i + 1) for i in range(len(_UA_TOKENS)))
_UA_PAIRS = tuple(zip(_UA_TOKENS, _UA_CODES, strict=True))
_UA_UNPAIRS = tuple(reversed(_UA_PAIRS))
_CONTROL = frozenset(chr(i) for i in range(32))


@lru_cache(maxsize=4096)
def _pack_ua(ua: str) -> bytes | str:
    """A user agent with its common tokens as single control characters (UTF-8 bytes).

    Lossless: user agents that contain control characters themselves (never real
    ones) stay text; bytes always mean "tokens substituted".
    """
    if not _CONTROL.isdisjoint(ua):
        return ua
    for token, code in _UA_PAIRS:
        ua = ua.replace(token, code)
    return ua.encode()


@lru_cache(maxsize=4096)
def _unpack_ua(value: bytes | str) -> str:
    if isinstance(value, str):
        return value
    ua = value.decode()
    for token, code in _UA_UNPAIRS:
        ua = ua.replace(code, token)
    return ua


def _pack_ids(keys: list[str]) -> list[Any]:
    """`[prefix, item, ...]`: hashes as 8 bytes, other ids as their suffix after the
    prefix they share (`evt-1-0000` of `evt-1-0000001`, `evt-1-0000004`...)."""
    if not keys:
        return []
    hex16 = _HEX16.issuperset
    packed: list[bytes | str] = [bytes.fromhex(k) if len(k) == 16 and hex16(k) else k
                                 for k in keys]
    texts = [k for k in packed if isinstance(k, str)]
    if not texts:
        return ["", *packed]
    # The prefix all share is the one the smallest and the largest share.
    lo, hi = min(texts), max(texts)
    cut, most = 0, min(len(lo), len(hi))
    while cut < most and lo[cut] == hi[cut]:
        cut += 1
    return [lo[:cut], *(k[cut:] if isinstance(k, str) else k for k in packed)]


def _unpack_ids(packed: list[Any]) -> list[str]:
    prefix = packed[0]
    return [prefix + k if isinstance(k, str) else k.hex() for k in packed[1:]]


def baseline_to_bytes(baseline: Baseline) -> bytes:
    """Serialize a baseline for the state store (Faust table / changelog).

    Version byte 2, then a msgpack array of the fields in `Baseline` order, with
    trailing fields at their defaults left out. Lossless: addresses are packed
    (4/16 bytes), times are stored relative to `created_at`, remembered event-id
    hashes as 8 raw bytes, and the last user agent as a marker when it is the
    initial one. What the engine compares and what explanations print come back
    exactly as they were.
    """
    values = list(_ALL_FIELDS(baseline))
    created = values[_I_CREATED]
    for i in _I_TIMES:
        value = values[i]
        if value is not None:
            values[i] = value - created
    for i in _I_IPS:
        value = values[i]
        if value is not None:
            values[i] = _pack_ip(value)
    if values[_I_SEEN_IPS]:
        values[_I_SEEN_IPS] = [_pack_ip(ip) for ip in values[_I_SEEN_IPS]]
    if values[_I_EVENT_IDS]:
        values[_I_EVENT_IDS] = _pack_ids(values[_I_EVENT_IDS])
    initial_ua, last_ua = values[_I_INITIAL_UA], values[_I_LAST_UA]
    if initial_ua is not None:
        values[_I_INITIAL_UA] = _pack_ua(initial_ua)
    if last_ua is not None:
        values[_I_LAST_UA] = _SAME_AS_INITIAL if last_ua == initial_ua else _pack_ua(last_ua)
    end = len(values)
    defaults = _BASELINE_DEFAULTS
    while end and values[end - 1] == defaults[end - 1]:
        end -= 1
    if end < len(values):
        del values[end:]
    return VERSION_BYTE + _encode(values)


def baseline_from_bytes(data: bytes) -> Baseline:
    """Inverse of baseline_to_bytes; also reads the JSON formats (positional, field names)."""
    if data[:1] == VERSION_BYTE:
        return _baseline_from_binary(data)
    raw = orjson.loads(data)
    if isinstance(raw, list):
        if not raw or raw[0] != BASELINE_JSON_FORMAT:
            raise ValueError(f"unknown baseline format {raw[:1]!r}")
        values = dict(zip(_BASELINE_NAMES, raw[1:], strict=False))
    else:
        values = {k: v for k, v in raw.items() if k in _BASELINE_FIELDS}
    for name in ("last_agent_version", "position"):
        value = values.get(name)
        if value is not None:
            values[name] = tuple(value)
    return Baseline(**values)


def _baseline_from_binary(data: bytes) -> Baseline:
    values = _decode(memoryview(data)[1:])
    if not isinstance(values, list) or not _REQUIRED_COUNT <= len(values) <= len(
            _BASELINE_NAMES):
        raise ValueError("unknown baseline format (binary)")
    for i in range(len(values), len(_BASELINE_NAMES)):
        values.append(_BASELINE_FRESH[i]())  # fresh lists: never shared between baselines
    created = values[_I_CREATED]
    for i in _I_TIMES:
        value = values[i]
        if value is not None:
            values[i] = value + created
    for i in _I_IPS:
        value = values[i]
        if value is not None:
            values[i] = _unpack_ip(value)
    if values[_I_SEEN_IPS]:
        values[_I_SEEN_IPS] = [_unpack_ip(ip) for ip in values[_I_SEEN_IPS]]
    if values[_I_EVENT_IDS]:
        values[_I_EVENT_IDS] = _unpack_ids(values[_I_EVENT_IDS])
    initial_ua = values[_I_INITIAL_UA]
    if initial_ua is not None:
        values[_I_INITIAL_UA] = initial_ua = _unpack_ua(initial_ua)
    last_ua = values[_I_LAST_UA]
    if last_ua is not None:
        values[_I_LAST_UA] = initial_ua if type(last_ua) is int else _unpack_ua(last_ua)
    for i in _I_TUPLES:
        value = values[i]
        if value is not None:
            values[i] = tuple(value)
    return Baseline(*values)


PROFILE_FORMAT = 2
"""Profiles are stored as version byte 2 + msgpack `[user, updated_at, kind, kind, ...]`,
each kind a list of `[key, updated_at - first, updated_at - last, sessions, session]`
in PROFILE_KINDS order (insertion order kept)."""
PROFILE_JSON_FORMAT = 1
"""The JSON encoding, `[1, user, updated_at, kind, ...]` with absolute times: still loads."""


def profile_to_bytes(profile: UserProfile) -> bytes:
    """Serialize a user profile for the state store (same table as the baselines)."""
    at = profile.updated_at
    kinds = [[[k, at - s.first, at - s.last, s.sessions, s.session] for k, s in getattr(
        profile, kind).items()] for kind in PROFILE_KINDS]
    return VERSION_BYTE + _encode([profile.user, at, *kinds])


def profile_from_bytes(data: bytes) -> UserProfile:
    if data[:1] == VERSION_BYTE:
        raw = _decode(memoryview(data)[1:])
        if not isinstance(raw, list) or len(raw) < 2:
            raise ValueError("unknown profile format (binary)")
        at = raw[1]
        profile = UserProfile(raw[0], updated_at=at)
        for kind, entries in zip(PROFILE_KINDS, raw[2:], strict=False):
            setattr(profile, kind, {k: Seen(at - first, at - last, sessions, session)
                                    for k, first, last, sessions, session in entries})
        return profile
    raw = orjson.loads(data)
    if not isinstance(raw, list) or not raw or raw[0] != PROFILE_JSON_FORMAT:
        raise ValueError(f"unknown profile format {raw[:1] if isinstance(raw, list) else raw!r}")
    profile = UserProfile(raw[1], updated_at=raw[2])
    for kind, entries in zip(PROFILE_KINDS, raw[3:], strict=False):
        setattr(profile, kind, {k: Seen(first, last, sessions, session)
                                for k, first, last, sessions, session in entries})
    return profile
