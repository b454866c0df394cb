"""`sessionwarden replay --jobs N`: the same outputs as one process, from N processes.

Why it is exact: a decision reads and writes two kinds of state, the session's
baseline (keyed by session id) and the user's profile (keyed by tenant + user
id, the user coming from the event or from its session's baseline). Two
records can influence each other only through a chain of shared session ids
and user ids. So:

1. **Plan** (this process): every input record is read once and reduced to the
   session ids and user ids its events carry. A union-find joins them into
   independent groups (a session with every user it was seen with, a user with
   all their sessions: the routing key of `worker.routing`, closed over every
   link the input actually contains). Each group goes to one shard, the
   largest-first onto the least loaded; records that touch no state (dead
   letters, skips) are spread evenly. Joining is conservative: a user id is
   joined across tenants and a record's events are kept together, which can
   only make groups larger, never split state.
2. **Run** (N forked processes): each reads the inputs itself and processes
   only its records, in input order, with its own `Pipeline` and store; for
   every record with outputs it writes a frame (record number + the bytes for
   each output file) to its own spool file.
3. **Merge** (this process): the spools are merged by record number into the
   output files, and the counters are summed.

Within a shard, every group sees its records in input order, and no state is
shared between groups, so each decision is the one a single process makes and
the merged files are byte-identical to `--jobs 1` (tests/unit/test_parallel_replay.py).

Standard input cannot be read twice; `replay` runs it in one process.
"""

from __future__ import annotations

import heapq
import multiprocessing
import os
import pickle
import struct
import sys
import time
import traceback
from array import array
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import msgspec
import orjson

from detectors import Policy, SessionEvent
from worker.codec import dumps_line
from worker.enrich import Enricher
from worker.errors import CouldNotRun
from worker.formats import decode_line, native_candidate
from worker.formats.base import opt_str
from worker.inputs import InputFile, iter_records
from worker.pipeline import Outputs, Pipeline, Stats
from worker.state import CompactStore

if TYPE_CHECKING:
    from worker.signals.tokens import Signer

_FRAME = struct.Struct("<QIIIII")
"""Record number, then the byte lengths of its commands, audit, alerts, dead letters, signals."""
_NO_STATE = -1
_SPOOL_BUFFER = 1 << 20
TIMINGS: dict[str, float] = {}
"""Seconds spent by the last `run_sharded` per phase, and each shard's CPU (for the bench)."""


class Plan:
    """Which shard processes each input record (see the module docstring)."""

    def __init__(self, jobs: int) -> None:
        self.jobs = jobs
        self._ids: dict[str, int] = {}
        self._parent = array("q")
        self._record_node = array("q")
        self.shard = bytearray()
        self.records = 0

    def _node(self, key: str) -> int:
        node = self._ids.get(key)
        if node is None:
            node = self._ids[key] = len(self._parent)
            self._parent.append(node)
        return node

    def _find(self, node: int) -> int:
        parent = self._parent
        root = node
        while parent[root] != root:
            root = parent[root]
        while parent[node] != root:  # path compression
            parent[node], node = root, parent[node]
        return root

    def add_node(self, node: int) -> None:
        """The next record touches what an earlier one did (`add`'s return value)."""
        self.records += 1
        self._record_node.append(node)

    def add(self, keys: Sequence[str]) -> int:
        """The state keys of the next record (empty: it touches no state); its node."""
        self.records += 1
        if not keys:
            self._record_node.append(_NO_STATE)
            return _NO_STATE
        first = self._find(self._node(keys[0]))
        for key in keys[1:]:
            other = self._find(self._node(key))
            if other != first:
                # The older (smaller) node stays the root: deterministic.
                if other < first:
                    first, other = other, first
                self._parent[other] = first
        self._record_node.append(first)
        return first

    def finish(self) -> None:
        """Assign groups to shards: largest first, onto the least loaded shard."""
        roots = array("q", (self._find(n) if n != _NO_STATE else _NO_STATE
                            for n in self._record_node))
        sizes: dict[int, int] = {}
        for root in roots:
            if root != _NO_STATE:
                sizes[root] = sizes.get(root, 0) + 1
        load = [0] * self.jobs
        shard_of: dict[int, int] = {}
        for root, size in sorted(sizes.items(), key=lambda kv: (-kv[1], kv[0])):
            k = min(range(self.jobs), key=load.__getitem__)
            shard_of[root] = k
            load[k] += size
        shard = bytearray(len(roots))
        spread = 0
        for i, root in enumerate(roots):
            if root == _NO_STATE:
                shard[i] = spread
                spread = (spread + 1) % self.jobs
            else:
                shard[i] = shard_of[root]
        self.shard = shard
        self.load = load
        self._ids.clear()
        self._parent = array("q")
        self._record_node = array("q")


def native_ids(value: dict[str, Any]) -> tuple[str, str | None] | None:
    """(session id, user id) of a native record's event, None if it can make no event.

    Exactly the ids `normalize_native` gives its event (if it gives one).
    """
    session = value.get("session")
    sid = session.get("id") if type(session) is dict else None
    if type(sid) is not str or not sid:
        return None
    user = value.get("user")
    return sid, opt_str(user.get("id")) if type(user) is dict else None


def state_keys(raw: bytes, fmt: str) -> list[str]:
    """The session ids (`s:`) and user ids (`u:`) the record's events carry."""
    keys: list[str] = []
    for outcome in decode_line(raw, fmt):
        if isinstance(outcome, SessionEvent):
            keys.append(f"s:{outcome.session.id}")
            if outcome.user_id:
                keys.append(f"u:{outcome.user_id}")
    return keys


class _Ids(msgspec.Struct):
    """What the plan reads of a native record: the keys that make it one, and its ids.

    Every other field is skipped by msgspec without being built. Records
    with an `eventType` or `data` key (an Okta event hook envelope is the one
    splitter that claims a record with `event_id`) take the full path.
    """

    event_id: Any = msgspec.UNSET
    occurred_at: Any = msgspec.UNSET
    session: Any = msgspec.UNSET
    user: Any = msgspec.UNSET
    eventType: Any = msgspec.UNSET
    data: Any = msgspec.UNSET


_decode_ids = msgspec.json.Decoder(_Ids).decode


Ids = tuple[str, str | None]
_UNDECIDED: Ids = ("", None)
"""`_fast_ids` could not decide: orjson and the full checks must."""


def _fast_ids(raw: bytes) -> Ids | None:
    """`native_ids` of a plain native record from msgspec; `_UNDECIDED` for the full path.

    The same answer as orjson + `native_candidate` + `native_ids`: msgspec
    keeps the last of duplicate keys as orjson does; JSON it refuses goes the
    full path, and JSON only it accepts is a dead letter for the pipeline
    (no state, so its shard does not matter).
    """
    try:
        rec = _decode_ids(raw)
    except msgspec.DecodeError:  # not an object, odd JSON, or a type mismatch
        return _UNDECIDED
    unset = msgspec.UNSET
    if rec.eventType is not unset or rec.data is not unset:
        return _UNDECIDED
    if rec.event_id is unset or (rec.occurred_at is unset and rec.session is unset):
        return _UNDECIDED  # not native: another adapter, or a dead letter
    session = rec.session
    sid = session.get("id") if type(session) is dict else None
    if type(sid) is not str or not sid:
        return None
    user = rec.user
    return sid, opt_str(user.get("id")) if type(user) is dict else None


def plan(inputs: Sequence[InputFile], fmt: str, jobs: int) -> Plan:
    """Read every record once and decide its shard.

    The common native record is read with msgspec, its ids only (`_fast_ids`);
    anything else is parsed with orjson and, if it is not a native record,
    decoded in full, as the pipeline will decode it.
    """
    p = Plan(jobs)
    loads, decode_error = orjson.loads, orjson.JSONDecodeError
    auto = fmt == "auto"
    last: dict[str, tuple[str | None, int]] = {}
    """Per session: the user id of its last record and its node (the usual repeat)."""
    for inp in inputs:
        for _lineno, raw in iter_records(inp):
            if auto and raw[:1] == b"{":
                ids = _fast_ids(raw)
                native = True
                if ids is _UNDECIDED:
                    try:
                        value = loads(raw)
                    except decode_error:  # the pipeline strips more than JSON whitespace
                        value = None
                    native = native_candidate(value)
                    ids = native_ids(value) if native else None
                if native:
                    if ids is None:
                        p.add(())
                        continue
                    seen = last.get(ids[0])
                    if seen is not None and seen[0] == ids[1]:
                        p.add_node(seen[1])
                        continue
                    node = p.add((f"s:{ids[0]}",) if ids[1] is None
                                 else (f"s:{ids[0]}", f"u:{ids[1]}"))
                    last[ids[0]] = (ids[1], node)
                    continue
            p.add(state_keys(raw, fmt))
    p.finish()
    return p


def _frames(path: Path) -> Iterator[tuple[int, list[bytes]]]:
    with path.open("rb", buffering=_SPOOL_BUFFER) as fh:
        read = fh.read
        size = _FRAME.size
        while True:
            head = read(size)
            if not head:
                return
            number, *lengths = _FRAME.unpack(head)
            yield number, [read(n) for n in lengths]


def _work(shard: int, plan_: Plan, inputs: Sequence[InputFile], spool: Path,
          pipeline: Pipeline) -> None:
    """One shard's replay: its records, in input order, outputs framed into spool."""
    store = CompactStore()
    out = Outputs()
    mine = plan_.shard
    number = 0
    with spool.open("wb", buffering=_SPOOL_BUFFER) as fh:
        write = fh.write
        for inp in inputs:
            name = inp.name
            for lineno, raw in iter_records(inp):
                if mine[number] == shard:
                    pipeline.process(raw, {"file": name, "line": lineno}, store, out)
                    if out.commands or out.audit or out.alerts or out.dead or out.signals:
                        blobs = [b"".join(v + b"\n" for _k, v in out.commands),
                                 b"".join(v + b"\n" for _k, v in out.audit),
                                 b"".join(v + b"\n" for _k, v in out.alerts),
                                 b"".join(map(dumps_line, out.dead)),
                                 b"".join(v + b"\n" for _k, v in out.signals)]
                        write(_FRAME.pack(number, *map(len, blobs)))
                        for blob in blobs:
                            write(blob)
                        out.clear()
                number += 1
    with spool.with_suffix(".stats").open("wb") as fh:
        pickle.dump((pipeline.stats, len(store), time.process_time()), fh)


def _child(shard: int, plan_: Plan, inputs: Sequence[InputFile], spool: Path,
           pipeline: Pipeline) -> None:
    try:
        _work(shard, plan_, inputs, spool, pipeline)
    except BaseException:
        traceback.print_exc(file=sys.stderr)
        os._exit(1)
    os._exit(0)


def merge_stats(parts: Sequence[Stats]) -> Stats:
    """The counters of all shards, summed."""
    total = Stats()
    for part in parts:
        for name in Stats.__slots__:
            value = getattr(part, name)
            if isinstance(value, int):
                setattr(total, name, getattr(total, name) + value)
            else:
                getattr(total, name).update(value)
    return total


def run_sharded(inputs: Sequence[InputFile], spool_dir: Path, sinks: Sequence[IO[bytes]],
                policy: Policy, enricher: Enricher, fmt: str, signer: Signer | None,
                jobs: int) -> tuple[Stats, int]:
    """Replay inputs over `jobs` processes into sinks (OUTPUT_FILES order); (stats, sessions)."""
    started = time.perf_counter()
    plan_ = plan(inputs, fmt, jobs)
    TIMINGS.clear()
    TIMINGS["plan_s"] = time.perf_counter() - started
    ctx = multiprocessing.get_context("fork")
    spools = [spool_dir / f".shard-{k}.frames" for k in range(jobs)]
    procs = []
    try:
        for k in range(jobs):
            pipeline = Pipeline(enricher, policy, fmt, signer)
            proc = ctx.Process(target=_child, args=(k, plan_, inputs, spools[k], pipeline),
                               name=f"sessionwarden-replay-{k}", daemon=True)
            proc.start()
            procs.append(proc)
        for proc in procs:
            proc.join()
        failed = [p.name for p in procs if p.exitcode != 0]
        if failed:
            raise CouldNotRun(f"replay shard process failed: {', '.join(failed)}")
        TIMINGS["run_s"] = time.perf_counter() - started - TIMINGS["plan_s"]
        merged = heapq.merge(*(_frames(s) for s in spools), key=lambda frame: frame[0])
        for _number, blobs in merged:
            for blob, sink in zip(blobs, sinks, strict=True):
                if blob:
                    sink.write(blob)
        parts: list[Stats] = []
        sessions = 0
        for spool in spools:
            with spool.with_suffix(".stats").open("rb") as fh:
                stats, count, cpu = pickle.load(fh)
            parts.append(stats)
            TIMINGS[f"shard_cpu_s_{len(parts) - 1}"] = cpu
            sessions += count
        TIMINGS["total_s"] = time.perf_counter() - started
        return merge_stats(parts), sessions
    finally:
        for proc in procs:
            if proc.is_alive():
                proc.kill()
                proc.join()
        for spool in spools:
            spool.unlink(missing_ok=True)
            spool.with_suffix(".stats").unlink(missing_ok=True)


def usable(inputs: Sequence[InputFile]) -> bool:
    """Sharded replay reads every input twice: only files can be (not stdin)."""
    return all(i.path is not None for i in inputs)
