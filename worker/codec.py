"""The one JSON codec for everything on the wire and on disk (orjson).

Output records are dicts with a fixed key order; orjson writes them
deterministically, which is what makes replay byte-identical across runs.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import orjson

from detectors.model import Baseline

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


_BASELINE_NAMES = tuple(f.name for f in fields(Baseline))
_BASELINE_FIELDS = frozenset(_BASELINE_NAMES)
BASELINE_FORMAT = 1
"""Baselines are stored positionally, `[1, field, field, ...]` in field order:
about half the size of an object with field names, per session, in RocksDB
and in the changelog. Append new fields at the end of `Baseline` (with
defaults) to stay readable; older, shorter records then take the defaults."""


def baseline_to_bytes(baseline: Baseline) -> bytes:
    """Serialize a baseline for the state store (Faust table / changelog)."""
    return orjson.dumps([BASELINE_FORMAT, *(getattr(baseline, n) for n in _BASELINE_NAMES)])


def baseline_from_bytes(data: bytes) -> Baseline:
    """Inverse of baseline_to_bytes; also reads the object form (field names)."""
    raw = orjson.loads(data)
    if isinstance(raw, list):
        if not raw or raw[0] != BASELINE_FORMAT:
            raise ValueError(f"unknown baseline format {raw[:1]!r}")
        values = dict(zip(_BASELINE_NAMES, raw[1:], strict=False))
    else:
        values = {k: v for k, v in raw.items() if k in _BASELINE_FIELDS}
    for name in ("last_agent_version", "position"):
        value = values.get(name)
        if value is not None:
            values[name] = tuple(value)
    return Baseline(**values)
