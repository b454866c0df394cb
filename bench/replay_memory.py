"""Memory of replay's in-process baseline dict, per session baseline.

Run as its own process (`python -m bench.replay_memory WARM FILE`): it feeds
WARM (other sessions) through the pipeline first, so one-time costs (the
user-agent regexes, database pages) are paid before the baseline RSS is
taken, then FILE through the same Pipeline replay uses into a plain dict,
discarding outputs, and prints JSON with two measures:

- `rss_bytes_per_session`: growth of the process RSS over the run (includes
  the bounded IP and user-agent caches and allocator slack);
- `deep_bytes_per_session`: `sys.getsizeof` summed over the dict and every
  object reachable from the stored baselines, each object counted once
  (strings shared between sessions, e.g. a popular user agent, count once).
"""

from __future__ import annotations

import gc
import os
import sys
from pathlib import Path
from typing import Any

import orjson

from bench.common import rss_bytes


def deep_size(store: Any) -> int:
    """Bytes of the dict, its keys and everything the baselines reference, once each."""
    seen: set[int] = set()
    total = 0
    stack: list[Any] = [store]
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            stack.extend(obj)
        elif hasattr(obj, "__slots__"):
            stack.extend(getattr(obj, name) for name in obj.__slots__ if hasattr(obj, name))
    return total


def _feed(pipeline: Any, path: Path, store: Any) -> None:
    from worker.pipeline import Outputs  # noqa: PLC0415

    outputs = Outputs()
    with path.open("rb") as fh:
        for n, line in enumerate(fh, start=1):
            pipeline.process(line, {"line": n}, store, outputs)
            outputs.clear()


def measure(warm: Path, path: Path) -> dict[str, Any]:
    """Run the pipeline over path into a dict store; RSS and deep size per baseline."""
    from worker.codec import baseline_to_bytes, profile_to_bytes  # noqa: PLC0415
    from worker.pipeline import Pipeline  # noqa: PLC0415
    from worker.settings import Settings  # noqa: PLC0415
    from worker.state import CompactStore  # noqa: PLC0415 - what replay keeps its state in

    settings = Settings()
    pipeline = Pipeline.from_settings(settings)
    # The warm-up store stays alive: freed memory would be reused by the
    # measured store and hide its growth.
    warm_store = CompactStore()
    _feed(pipeline, warm, warm_store)
    store = CompactStore()
    gc.collect()
    before = rss_bytes(os.getpid())
    _feed(pipeline, path, store)
    gc.collect()
    after = rss_bytes(os.getpid())
    del warm_store
    sessions = len(store)
    deep = deep_size(store)
    n = max(sessions, 1)
    stored = sum(len(baseline_to_bytes(b)) for b in store.values()) / n
    stored_json = sum(len(_json_baseline(b)) for b in store.values()) / n
    profiles = list(store.profiles())
    m = max(len(profiles), 1)
    profile_stored = sum(len(profile_to_bytes(p)) for p in profiles) / m
    profile_json = sum(len(_json_profile(p)) for p in profiles) / m
    return {"sessions": sessions, "rss_growth_bytes": after - before,
            "rss_bytes_per_session": round((after - before) / n, 1),
            "deep_bytes": deep, "deep_bytes_per_session": round(deep / n, 1),
            "baseline_stored_bytes_avg": round(stored, 1),
            "baseline_json_bytes_avg": round(stored_json, 1),
            "baseline_shrink_vs_json": round(stored_json / stored, 2) if stored else None,
            "profiles": len(profiles),
            "profile_stored_bytes_avg": round(profile_stored, 1),
            "profile_json_bytes_avg": round(profile_json, 1),
            "profile_shrink_vs_json": round(profile_json / profile_stored, 2)
            if profile_stored else None}


def _json_baseline(base: Any) -> bytes:
    """The JSON encoding the state store used before format 2 (`[1, field, ...]`)."""
    from dataclasses import fields  # noqa: PLC0415

    return orjson.dumps([1, *(getattr(base, f.name) for f in fields(base))])


def _json_profile(profile: Any) -> bytes:
    from detectors.model import PROFILE_KINDS  # noqa: PLC0415

    kinds = [[[k, s.first, s.last, s.sessions, s.session] for k, s in getattr(
        profile, kind).items()] for kind in PROFILE_KINDS]
    return orjson.dumps([1, profile.user, profile.updated_at, *kinds])


def main() -> int:
    if len(sys.argv) != 3:
        print("usage: python -m bench.replay_memory WARM FILE", file=sys.stderr)
        return 2
    sys.stdout.write(orjson.dumps(measure(Path(sys.argv[1]), Path(sys.argv[2]))).decode()
                     + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
