"""The enforcer's durable memory: one compacted Kafka topic of command states.

Why a topic: the enforcer must survive `kill -9` without losing a command or
applying one twice, and must keep held commands until an operator decides.
Records of `session-enforcement-state` are keyed by command id and written to
the *same partition number* as the command they describe, so the instance
that owns partition p of `session-commands` restores partition p of the
state topic when it is assigned, as a Faust changelog would. Compaction keeps
the last state of each command:

* `intent` -- written (and flushed) *before* the IdP is called;
* `done`   -- written with the result, after the call;
* `held`   -- the breaker held it (with the whole command) until an operator
  releases or discards it.

On restart, `done`/`held` commands are re-delivered duplicates and are not
applied again; an `intent` without a `done` is *in doubt* (the call may have
reached the IdP): the enforcer asks the IdP whether the session still exists
before it sends anything.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import orjson

INTENT = "intent"
DONE = "done"
HELD = "held"


@dataclass(slots=True)
class Entry:
    """The last known state of one command."""

    state: str
    command_id: str
    partition: int
    tenant: str
    session_id: str
    type: str
    ts_ms: int
    """Kafka timestamp of the command record: the breaker's clock."""
    outcome: str | None = None
    command: dict[str, Any] | None = None
    """The command itself (held and intent entries: needed to apply it later)."""
    resolution: str | None = None
    operator: str | None = None

    def to_bytes(self) -> bytes:
        return orjson.dumps({
            "state": self.state, "command_id": self.command_id, "tenant": self.tenant,
            "session_id": self.session_id, "type": self.type, "ts_ms": self.ts_ms,
            "outcome": self.outcome, "command": self.command, "resolution": self.resolution,
            "operator": self.operator})

    @classmethod
    def from_bytes(cls, data: bytes, partition: int) -> Entry:
        raw = orjson.loads(data)
        if not isinstance(raw, dict) or raw.get("state") not in (INTENT, DONE, HELD):
            raise ValueError("not an enforcement state record")
        return cls(state=raw["state"], command_id=str(raw["command_id"]), partition=partition,
                   tenant=str(raw.get("tenant") or ""), session_id=str(raw["session_id"]),
                   type=str(raw.get("type") or ""), ts_ms=int(raw.get("ts_ms") or 0),
                   outcome=raw.get("outcome"), command=raw.get("command"),
                   resolution=raw.get("resolution"), operator=raw.get("operator"))


@dataclass(slots=True)
class StateStore:
    """command id -> Entry for the partitions this instance owns.

    Held commands are also indexed per tenant: the breaker asks "does this
    tenant have held commands?" for every revoke, which must not scan every
    command ever seen.
    """

    entries: dict[str, Entry] = field(default_factory=dict)
    invalid_records: int = 0
    _held: dict[str, set[str]] = field(default_factory=dict)

    def get(self, command_id: str) -> Entry | None:
        return self.entries.get(command_id)

    def put(self, entry: Entry) -> None:
        self._unindex(self.entries.get(entry.command_id))
        self.entries[entry.command_id] = entry
        if entry.state == HELD:
            self._held.setdefault(entry.tenant, set()).add(entry.command_id)

    def _unindex(self, old: Entry | None) -> None:
        if old is not None and old.state == HELD:
            ids = self._held.get(old.tenant)
            if ids is not None:
                ids.discard(old.command_id)
                if not ids:
                    del self._held[old.tenant]

    def load(self, partition: int, records: Iterable[tuple[bytes | None, bytes | None]]) -> None:
        """Apply a partition's records in offset order (last one wins, None deletes)."""
        for key, value in records:
            if key is None:
                continue
            command_id = key.decode("utf-8", "replace")
            if value is None:
                self._unindex(self.entries.pop(command_id, None))
                continue
            try:
                self.put(Entry.from_bytes(value, partition))
            except (ValueError, KeyError, TypeError):
                self.invalid_records += 1

    def forget(self, partitions: Iterable[int]) -> None:
        """Drop the entries of partitions this instance no longer owns."""
        gone = set(partitions)
        for entry in [e for e in self.entries.values() if e.partition in gone]:
            self._unindex(entry)
            del self.entries[entry.command_id]

    def held(self, tenant: str | None = None) -> Iterator[Entry]:
        tenants = [tenant] if tenant is not None else list(self._held)
        return (self.entries[cid] for t in tenants for cid in sorted(self._held.get(t, ())))

    def failed(self, tenant: str | None = None) -> Iterator[Entry]:
        """Commands whose last outcome is `failed` and whose content is kept (retryable)."""
        return (e for e in self.entries.values()
                if e.state == DONE and e.outcome == "failed" and e.command is not None
                and (tenant is None or e.tenant == tenant))

    def has_held(self, tenant: str) -> bool:
        return tenant in self._held

    def __len__(self) -> int:
        return len(self.entries)
