"""Per-stage cost of replay, in µs of process CPU per event (`python -m bench.profile_replay FILE`).

Each stage runs on its own over the whole file, in the order the pipeline
runs them, so no profiler overhead distorts the figures:

- `decode`: `decode_line` of every line (JSON parse, field checks, event build);
- `enrich`: `Enricher.enrich` of every event (IP and user-agent lookups, cached);
- `evaluate`: `detectors.evaluate` of every enriched event against a store, in
  input order (what the pipeline does, minus serialisation and bookkeeping);
- `serialize`: orjson of the decisions' records;
- `pipeline`: the whole `Pipeline.process` loop (what replay runs per line);
- `bookkeeping`: `pipeline` minus the four stages (counters, dead letters,
  signal signing, store writes, and the garbage collector's work).

Process CPU (user + system, `time.process_time`) is measured, not wall time,
so a busy neighbour on the machine changes the figures less. `--rounds`
repeats each stage and keeps the smallest.
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson


def _best(fn: Callable[[], Any], rounds: int, collect: bool = False) -> tuple[float, Any]:
    """Smallest CPU time of fn over rounds.

    The isolated stages keep every intermediate object alive (all events, all
    decisions), which the pipeline never does; the cyclic garbage collector would
    then charge them for scanning those lists again and again, so it is off during
    them (`collect=False`). The whole pipeline runs with it, as replay does: the
    collector's real cost shows up in `bookkeeping`.
    """
    best, result = float("inf"), None
    for _ in range(rounds):
        gc.collect()
        if not collect:
            gc.disable()
        try:
            t0 = time.process_time()
            result = fn()
            best = min(best, time.process_time() - t0)
        finally:
            gc.enable()
    return best, result


def profile(path: Path, rounds: int = 1) -> dict[str, Any]:
    """Per-stage CPU µs per input line (see the module docstring)."""
    from detectors import SessionEvent, evaluate  # noqa: PLC0415
    from detectors.model import UserProfile  # noqa: PLC0415
    from worker.codec import dumps  # noqa: PLC0415
    from worker.formats import decode_line  # noqa: PLC0415
    from worker.pipeline import MemoryStore, Outputs, Pipeline  # noqa: PLC0415
    from worker.routing import user_key  # noqa: PLC0415
    from worker.settings import Settings  # noqa: PLC0415

    lines = path.read_bytes().splitlines()
    n = len(lines)
    settings = Settings()
    pipeline = Pipeline.from_settings(settings, ephemeral_key_ok=True)

    def decode() -> list[Any]:
        return [o for line in lines for o in decode_line(line)
                if isinstance(o, SessionEvent)]

    t_decode, events = _best(decode, rounds)
    enricher = pipeline.enricher
    t_enrich, enriched = _best(lambda: [enricher.enrich(e) for e in events], rounds)
    policy = pipeline.policy

    def evaluate_all() -> list[Any]:
        # Fresh events each round: evaluate keeps references to them.
        store: dict[str, Any] = {}
        profiles: dict[str, Any] = {}
        decisions = []
        for ev in enriched:
            e = ev.event
            base = store.get(e.session.id)
            user = e.user_id or (base.user_id if base is not None else None)
            pkey = user_key(e.tenant or (base.tenant if base is not None else ""),
                            user) if user else None
            prof = (profiles.get(pkey) or UserProfile(pkey)) if pkey else None
            d = evaluate(ev, base, policy, prof)
            if not d.duplicate:
                store[e.session.id] = d.baseline
                if pkey is not None and d.profile is not None:
                    profiles[pkey] = d.profile
            decisions.append(d)
        return decisions

    t_eval, decisions = _best(evaluate_all, 1)

    def serialize() -> int:
        size = 0
        for d in decisions:
            for r in (*d.commands, *d.audit, *d.alerts):
                size += len(dumps(r))
        return size

    t_ser, _ = _best(serialize, rounds)

    store_type: Callable[[], Any] = MemoryStore
    try:  # what replay keeps its state in (absent from older versions of the code)
        from worker.state import CompactStore  # noqa: PLC0415

        store_type = CompactStore
    except ImportError:
        pass

    def whole() -> None:
        p = Pipeline.from_settings(settings, ephemeral_key_ok=True)
        store, out = store_type(), Outputs()
        for i, line in enumerate(lines, start=1):
            p.process(line, {"file": path.name, "line": i}, store, out)
            if i % 2048 == 0:
                out.clear()

    t_all, _ = _best(whole, 1, collect=True)
    us = 1e6 / max(n, 1)
    stages = {"decode": t_decode * us, "enrich": t_enrich * us, "evaluate": t_eval * us,
              "serialize": t_ser * us}
    stages["bookkeeping"] = max(t_all * us - sum(stages.values()), 0.0)
    stages["pipeline"] = t_all * us
    return {"input": path.name, "lines": n, "events": len(events),
            "cpu_us_per_event": {k: round(v, 1) for k, v in stages.items()}}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.profile_replay",
                                description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("file", type=Path)
    p.add_argument("--rounds", type=int, default=1)
    args = p.parse_args(argv)
    sys.stdout.write(orjson.dumps(profile(args.file, args.rounds),
                                  option=orjson.OPT_INDENT_2).decode() + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
