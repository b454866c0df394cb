"""The one JSON codec for everything on the wire and on disk (orjson).

Output records are dicts with a fixed key order; orjson writes them
deterministically, which is what makes replay byte-identical across runs.
"""

from __future__ import annotations

import ipaddress
import os
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


def _unpack_ip(value: bytes | str) -> str:
    return str(ipaddress.ip_address(value)) if isinstance(value, bytes) else value


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


def _pack_id(key: str) -> bytes | str:
    """A remembered event id: 8 bytes for a 64-bit hex hash (`dedup_key`), else the text."""
    if len(key) == 16 and _HEX16.issuperset(key):
        return bytes.fromhex(key)
    return key


def _pack_ids(keys: list[str]) -> list[Any]:
    """`[prefix, item, ...]`: hashes as 8 bytes, other ids as their suffix after the
    prefix they share (`evt-1-0000` of `evt-1-0000001`, `evt-1-0000004`...)."""
    if not keys:
        return []
    packed = [_pack_id(k) for k in keys]
    texts = [k for k in packed if isinstance(k, str)]
    prefix = os.path.commonprefix(texts) if texts else ""  # noqa: RUF071 - characters wanted
    cut = len(prefix)
    return [prefix, *(k[cut:] if isinstance(k, str) else k for k in packed)]


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
    created = baseline.created_at
    values: list[Any] = []
    for name in _BASELINE_NAMES:
        value = getattr(baseline, name)
        if value is not None:
            if name in _TIME_FIELDS:
                value -= created
            elif name in _IP_FIELDS:
                value = _pack_ip(value)
            elif name == "seen_ips":
                value = [_pack_ip(ip) for ip in value]
            elif name == "recent_event_ids":
                value = _pack_ids(value)
            elif name == "initial_user_agent":
                value = _pack_ua(value)
            elif name == "last_user_agent":
                value = (_SAME_AS_INITIAL if value == baseline.initial_user_agent
                         else _pack_ua(value))
        values.append(value)
    end = len(values)
    while end and values[end - 1] == _BASELINE_DEFAULTS[end - 1]:
        end -= 1
    return VERSION_BYTE + _encode(values[:end])


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
    raw = _decode(memoryview(data)[1:])
    if not isinstance(raw, list) or len(raw) > len(_BASELINE_NAMES):
        raise ValueError("unknown baseline format (binary)")
    values = dict(zip(_BASELINE_NAMES, raw, strict=False))
    created = values["created_at"]
    for name in _TIME_FIELDS:
        value = values.get(name)
        if value is not None:
            values[name] = value + created
    for name in _IP_FIELDS:
        value = values.get(name)
        if value is not None:
            values[name] = _unpack_ip(value)
    if values.get("seen_ips"):
        values["seen_ips"] = [_unpack_ip(ip) for ip in values["seen_ips"]]
    if values.get("recent_event_ids"):
        values["recent_event_ids"] = _unpack_ids(values["recent_event_ids"])
    initial_ua = values.get("initial_user_agent")
    if initial_ua is not None:
        values["initial_user_agent"] = initial_ua = _unpack_ua(initial_ua)
    last_ua = values.get("last_user_agent")
    if last_ua is not None:
        values["last_user_agent"] = (initial_ua if type(last_ua) is int
                                     else _unpack_ua(last_ua))
    for name in ("last_agent_version", "position"):
        value = values.get(name)
        if value is not None:
            values[name] = tuple(value)
    return Baseline(**values)


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
