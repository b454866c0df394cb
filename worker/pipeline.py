"""Decode -> normalize -> enrich -> evaluate, shared by replay and the worker.

The pipeline owns no I/O: callers hand it raw records with their origin and a
baseline store, and get output records back in `Outputs`. Replay passes a
dict as the store; the Faust worker passes its changelog-backed table.
"""

from __future__ import annotations

import copy
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import orjson

from detectors import Baseline, Decision, EnrichedEvent, Policy, SessionEvent, evaluate
from detectors.model import UserProfile
from worker.enrich import Enricher
from worker.formats import Invalid, Outcome, Skip, decode_line
from worker.policy_file import load_policy
from worker.routing import user_key
from worker.settings import DecisionSettings

if TYPE_CHECKING:
    from worker.signals.tokens import Signer

_dumps = orjson.dumps
"""`worker.codec.dumps` without the call in between (the same bytes)."""
_NONE: list[Any] = []
"""Shared empty output list of decisions without records (never appended to)."""
RAW_LIMIT = 65536
"""Dead letters keep at most this many bytes of the original record (as text)."""
MAX_OUTPUT_BYTES = 1024 * 1024
"""Default largest output record; the worker passes its topics' limit."""


class BaselineStore(Protocol):
    """Where session baselines and user profiles live: memory in replay, a Faust table live."""

    def get(self, key: str, /) -> Baseline | None: ...

    def __setitem__(self, key: str, value: Baseline, /) -> None: ...

    def get_profile(self, key: str, /) -> UserProfile | None: ...

    def set_profile(self, key: str, value: UserProfile, /) -> None: ...


class MemoryStore(dict[str, Baseline]):
    """Replay's state: session baselines by session id, user profiles by user key."""

    def __init__(self) -> None:
        super().__init__()
        self.profiles: dict[str, UserProfile] = {}

    def get_profile(self, key: str, /) -> UserProfile | None:
        return self.profiles.get(key)

    def set_profile(self, key: str, value: UserProfile, /) -> None:
        self.profiles[key] = value


Record = tuple[bytes | None, bytes]
"""An output record as it goes on the wire: (Kafka key = session id, JSON value)."""

Trace = Callable[[SessionEvent, EnrichedEvent, Baseline | None, Decision], None]
"""Called with (event, enriched event, baseline before it, decision) for every decision
kept, duplicates included: the report's per-session timelines and `diff` read decisions
this way. The baseline is a copy (None for a session's first event)."""


@dataclass(slots=True)
class Outputs:
    """Records produced for the output streams, in input order, already serialized.

    Serialized once, here: replay writes the same bytes the worker publishes,
    and the size of every record is known before its decision is kept.
    """

    commands: list[Record] = field(default_factory=list)
    audit: list[Record] = field(default_factory=list)
    alerts: list[Record] = field(default_factory=list)
    dead: list[dict[str, Any]] = field(default_factory=list)
    signals: list[Record] = field(default_factory=list)
    """Signed CAEP SET records (worker/signals/), when a signer is configured."""

    def clear(self) -> None:
        self.commands.clear()
        self.audit.clear()
        self.alerts.clear()
        self.dead.clear()
        self.signals.clear()


@dataclass(slots=True)
class Stats:
    """Counters behind summary.json and the worker's metrics."""

    events_read: int = 0
    events_processed: int = 0
    events_skipped: int = 0
    dead_letters: int = 0
    duplicates: int = 0
    redelivered: int = 0
    """Kafka re-deliveries recognised by input position (never in replay)."""
    suppressed: int = 0
    commands: int = 0
    audit_events: int = 0
    alerts: int = 0
    signals: int = 0
    commands_by_type: Counter[str] = field(default_factory=Counter)
    findings_by_detector: Counter[str] = field(default_factory=Counter)
    skipped_by_reason: Counter[str] = field(default_factory=Counter)
    dead_by_reason: Counter[str] = field(default_factory=Counter)
    processed_by_source: Counter[str] = field(default_factory=Counter)
    commands_by_tenant: Counter[tuple[str, str]] = field(default_factory=Counter)
    """(command type, tenant) -> count, for the worker's metrics (not in summary.json)."""

    def summary(self, sessions: int | None = None) -> dict[str, Any]:
        """The summary.json content: deterministic (sorted keys, no timings)."""
        out: dict[str, Any] = {
            "events_read": self.events_read,
            "events_processed": self.events_processed,
            "events_skipped": self.events_skipped,
            "dead_letters": self.dead_letters,
            "commands": self.commands,
            "alerts": self.alerts,
            "signals": self.signals,
            "audit_events": self.audit_events,
            "duplicates": self.duplicates,
            "suppressed": self.suppressed,
            "commands_by_type": dict(sorted(self.commands_by_type.items())),
            "findings_by_detector": dict(sorted(self.findings_by_detector.items())),
            "processed_by_source": dict(sorted(self.processed_by_source.items())),
            "skipped_by_reason": dict(sorted(self.skipped_by_reason.items())),
            "dead_by_reason": dict(sorted(self.dead_by_reason.items())),
        }
        if sessions is not None:
            out["sessions"] = sessions
        return out


def _reason_class(reason: str) -> str:
    """Group dead-letter reasons for the summary (drop the varying details)."""
    return reason.split(":", 1)[0].split("[", 1)[0].strip()[:80]


def dead_letter(raw: bytes, reason: str, source: str, origin: dict[str, Any]) -> dict[str, Any]:
    """A dead-letter record: where it came from, why, and the original text."""
    text = raw[:RAW_LIMIT].decode("utf-8", errors="replace")
    return {"origin": origin, "error": reason, "source": source, "raw": text,
            "raw_bytes": len(raw), "raw_truncated": len(raw) > RAW_LIMIT}


class Pipeline:
    """Runs records through the decision core against a baseline store."""

    def __init__(self, enricher: Enricher, policy: Policy, fmt: str = "auto",
                 signer: Signer | None = None,
                 max_output_bytes: int = MAX_OUTPUT_BYTES) -> None:
        self.enricher = enricher
        self.policy = policy
        self.fmt = fmt
        self.signer = signer
        self.max_output_bytes = max_output_bytes
        self.stats = Stats()
        self.trace: Trace | None = None
        """Optional observer of decisions (see `Trace`); None costs nothing per event."""

    @classmethod
    def from_settings(cls, settings: DecisionSettings, *,
                      ephemeral_key_ok: bool = False) -> Pipeline:
        """The pipeline replay and the worker both build from the same settings.

        Signals are signed with the configured key; only replay may fall back
        to an ephemeral one (`Signer.from_settings`).
        """
        from worker.signals.tokens import Signer  # noqa: PLC0415 - joserfc only when used

        limit = getattr(settings, "max_output_bytes", MAX_OUTPUT_BYTES)
        return cls(Enricher.from_settings(settings), load_policy(settings.policy_file),
                   settings.input_format,
                   Signer.from_settings(settings, ephemeral_ok=ephemeral_key_ok), limit)

    def process(self, raw: bytes, origin: dict[str, Any], store: BaselineStore,
                out: Outputs) -> None:
        """Process one input record (a line or a Kafka message value)."""
        self.process_decoded(raw, decode_line(raw, self.fmt), origin, store, out)

    def process_decoded(self, raw: bytes, outcomes: list[Outcome], origin: dict[str, Any],
                        store: BaselineStore, out: Outputs) -> None:
        """Process the decoded outcomes of one record (`diff` decodes once for two policies)."""
        for index, outcome in enumerate(outcomes):
            self.stats.events_read += 1
            if isinstance(outcome, SessionEvent):
                self.process_event(outcome, store, out, raw, origin, index)
            elif isinstance(outcome, Skip):
                self.stats.events_skipped += 1
                self.stats.skipped_by_reason[outcome.reason] += 1
            else:
                self._dead(raw, outcome, origin, out)

    def _dead(self, raw: bytes, outcome: Invalid, origin: dict[str, Any], out: Outputs) -> None:
        self.stats.dead_letters += 1
        self.stats.dead_by_reason[f"{outcome.source}: {_reason_class(outcome.reason)}"] += 1
        out.dead.append(dead_letter(raw, outcome.reason, outcome.source, origin))

    def process_event(self, event: SessionEvent, store: BaselineStore, out: Outputs,
                      raw: bytes = b"", origin: dict[str, Any] | None = None,
                      index: int = 0) -> None:
        """Enrich and evaluate one normalized event; store the new baseline.

        The baseline is stored only once the decision's records are known to
        fit their topics: a decision that cannot be published must not be
        remembered (its commands would be lost), so it becomes a dead letter.
        """
        stats = self.stats
        key = event.session.id
        baseline = store.get(key)
        position = input_position(origin, index)
        if baseline is not None and already_processed(baseline, position, event.occurred_at):
            stats.events_processed += 1
            stats.processed_by_source[event.source] += 1
            stats.redelivered += 1
            return
        user = event.user_id or (baseline.user_id if baseline is not None else None)
        pkey = user_key(event.tenant or (baseline.tenant if baseline is not None else ""),
                        user) if user else None
        profile = (store.get_profile(pkey) or UserProfile(pkey)) if pkey else None
        enriched = self.enricher.enrich(event)
        trace = self.trace
        before = copy.copy(baseline) if trace is not None and baseline is not None else None
        decision = evaluate(enriched, baseline, self.policy, profile)
        if decision.duplicate:
            stats.events_processed += 1
            stats.processed_by_source[event.source] += 1
            stats.duplicates += 1
            if trace is not None:
                trace(event, enriched, before, decision)
            return
        commands: list[Record] = _NONE
        audit: list[Record] = _NONE
        alerts: list[Record] = _NONE
        signals: list[Record] = _NONE
        largest = 0
        if decision.commands or decision.audit or decision.alerts or decision.findings:
            # Most events cause no record: then nothing below is built.
            sid = key.encode()
            commands = [(sid, _dumps(r)) for r in decision.commands]
            audit = [(sid, _dumps(r)) for r in decision.audit]
            alerts = [(sid, _dumps(r)) for r in decision.alerts]
            if self.signer is not None and (decision.commands or decision.findings):
                base = decision.baseline
                signals = [(sid, _dumps(r)) for r in self.signer.records(
                    decision.commands, decision.findings, event_id=event.event_id,
                    session_id=key, user_id=event.user_id or base.user_id,
                    tenant=event.tenant or base.tenant, occurred_at=event.occurred_at,
                    policy_version=self.policy.version)]
            largest = max((len(v) for _k, v in (*commands, *audit, *alerts, *signals)),
                          default=0)
        if largest > self.max_output_bytes:
            self._dead(raw, Invalid(f"output record too large: {largest:,} bytes (limit "
                                    f"{self.max_output_bytes:,})", event.source),
                       origin or {}, out)
            return
        stats.events_processed += 1
        stats.processed_by_source[event.source] += 1
        if position is not None:
            decision.baseline.position = position
        store[key] = decision.baseline
        if pkey is not None and decision.profile is not None:
            store.set_profile(pkey, decision.profile)
        if decision.suppressed == "session already revoked":
            stats.suppressed += 1
        if commands:
            out.commands.extend(commands)
            stats.commands += len(commands)
            for cmd in decision.commands:
                stats.commands_by_type[cmd["type"]] += 1
                stats.commands_by_tenant[cmd["type"], cmd["tenant"] or ""] += 1
        if audit:
            out.audit.extend(audit)
            stats.audit_events += len(audit)
        if alerts:
            out.alerts.extend(alerts)
            stats.alerts += len(alerts)
        if signals:
            out.signals.extend(signals)
            stats.signals += len(signals)
        for f in decision.findings:
            stats.findings_by_detector[f"{f.detector}:{f.action}"] += 1
        if trace is not None:
            trace(event, enriched, before, decision)


def input_position(origin: dict[str, Any] | None,
                   index: int) -> tuple[str, int, int, int] | None:
    """Where an event sits in a Kafka input: (topic, partition, offset, index in record)."""
    if not origin or "topic" not in origin:  # replay: file and line
        return None
    topic, partition, offset = origin.get("topic"), origin.get("partition"), origin.get("offset")
    if not isinstance(topic, str) or not isinstance(partition, int) or \
            not isinstance(offset, int):
        return None
    return (topic, partition, offset, index)


def already_processed(baseline: Baseline, position: tuple[str, int, int, int] | None,
                      occurred_at: int) -> bool:
    """A Kafka re-delivery of an event the session's baseline already contains.

    After a crash, Kafka re-delivers everything after the last committed
    offset; the engine's window of 32 recent event ids cannot recognise a
    longer run, so older events would be decided again against a newer
    baseline (replay never does that). The baseline therefore remembers the
    input position of the last event it took in: an event at or before it,
    on the same topic-partition and no newer than the session's last
    interaction, is one it has seen. The time condition keeps a re-created
    topic (whose offsets restart at 0) from swallowing genuinely new events.
    """
    last = baseline.position
    return (position is not None and last is not None and position[:2] == last[:2]
            and position[2:] <= last[2:] and occurred_at <= baseline.last_interacted_at)
