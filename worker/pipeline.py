"""Decode -> normalize -> enrich -> evaluate, shared by replay and the worker.

The pipeline owns no I/O: callers hand it raw records with their origin and a
baseline store, and get output records back in `Outputs`. Replay passes a
dict as the store; the Faust worker passes its changelog-backed table.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from detectors import Baseline, Policy, SessionEvent, evaluate
from worker.enrich import Enricher
from worker.formats import Invalid, Skip, decode_line
from worker.policy_file import load_policy
from worker.settings import Settings

if TYPE_CHECKING:
    from worker.signals.tokens import Signer

RAW_LIMIT = 65536
"""Dead letters keep at most this many bytes of the original record (as text)."""


class BaselineStore(Protocol):
    """Where session baselines live: a dict in replay, a Faust table live."""

    def get(self, key: str, /) -> Baseline | None: ...

    def __setitem__(self, key: str, value: Baseline, /) -> None: ...


@dataclass(slots=True)
class Outputs:
    """Records produced for the output streams, in input order."""

    commands: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    dead: list[dict[str, Any]] = field(default_factory=list)
    signals: list[dict[str, Any]] = field(default_factory=list)
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
                 signer: Signer | None = None) -> None:
        self.enricher = enricher
        self.policy = policy
        self.fmt = fmt
        self.signer = signer
        self.stats = Stats()

    @classmethod
    def from_settings(cls, settings: Settings, *, ephemeral_key_ok: bool = False) -> Pipeline:
        """The pipeline replay and the worker both build from the same settings.

        Signals are signed with the configured key; only replay may fall back
        to an ephemeral one (`Signer.from_settings`).
        """
        from worker.signals.tokens import Signer  # noqa: PLC0415 - joserfc only when used

        return cls(Enricher.from_settings(settings), load_policy(settings.policy_file),
                   settings.input_format,
                   Signer.from_settings(settings, ephemeral_ok=ephemeral_key_ok))

    def process(self, raw: bytes, origin: dict[str, Any], store: BaselineStore,
                out: Outputs) -> None:
        """Process one input record (a line or a Kafka message value)."""
        for outcome in decode_line(raw, self.fmt):
            self.stats.events_read += 1
            if isinstance(outcome, SessionEvent):
                self.process_event(outcome, store, out)
            elif isinstance(outcome, Skip):
                self.stats.events_skipped += 1
                self.stats.skipped_by_reason[outcome.reason] += 1
            else:
                self._dead(raw, outcome, origin, out)

    def _dead(self, raw: bytes, outcome: Invalid, origin: dict[str, Any], out: Outputs) -> None:
        self.stats.dead_letters += 1
        self.stats.dead_by_reason[f"{outcome.source}: {_reason_class(outcome.reason)}"] += 1
        out.dead.append(dead_letter(raw, outcome.reason, outcome.source, origin))

    def process_event(self, event: SessionEvent, store: BaselineStore, out: Outputs) -> None:
        """Enrich and evaluate one normalized event; store the new baseline."""
        stats = self.stats
        stats.events_processed += 1
        stats.processed_by_source[event.source] += 1
        key = event.session.id
        decision = evaluate(self.enricher.enrich(event), store.get(key), self.policy)
        if decision.duplicate:
            stats.duplicates += 1
            return
        store[key] = decision.baseline
        if decision.suppressed == "session already revoked":
            stats.suppressed += 1
        if decision.commands:
            out.commands.extend(decision.commands)
            stats.commands += len(decision.commands)
            for cmd in decision.commands:
                stats.commands_by_type[cmd["type"]] += 1
        if decision.audit:
            out.audit.extend(decision.audit)
            stats.audit_events += len(decision.audit)
        if decision.alerts:
            out.alerts.extend(decision.alerts)
            stats.alerts += len(decision.alerts)
        for f in decision.findings:
            stats.findings_by_detector[f"{f.detector}:{f.action}"] += 1
        if self.signer is not None and (decision.commands or decision.findings):
            base = decision.baseline
            signals = self.signer.records(
                decision.commands, decision.findings, event_id=event.event_id,
                session_id=key, user_id=event.user_id or base.user_id,
                tenant=event.tenant or base.tenant, occurred_at=event.occurred_at,
                policy_version=self.policy.version)
            if signals:
                out.signals.extend(signals)
                stats.signals += len(signals)
