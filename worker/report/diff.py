"""Policy backtesting: what changes for each session when the policy changes.

Two ways in, one comparison:
- `replay_two`: one pass over the input, each record decoded once and fed to
  two `Pipeline`s (the base policy and the candidate) that share one
  enricher; the candidate's outputs are written as a normal replay
  directory, the base's are only digested.
- `digest_outputs`: two existing replay directories, read from their
  `commands.jsonl`.

Either way each session is reduced to a `Digest` (revoked when and why,
step-ups, final absolute and idle expiry, cookie mode) built from command
records, so both ways give the same `compare` result.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from detectors import Baseline, Decision, EnrichedEvent, Policy, SessionEvent
from worker.codec import JSONDecodeError, dumps_pretty, loads
from worker.enrich import Enricher
from worker.formats import decode_line
from worker.inputs import InputFile
from worker.inputs import iter_records as iter_input_records
from worker.pipeline import MemoryStore, Outputs, Pipeline
from worker.replay import (
    JWKS_FILE,
    OUTPUT_FILES,
    REPORT_FILES,
    RUN_FILE,
    SUMMARY,
    OutputDir,
    Progress,
    write_records,
)

if TYPE_CHECKING:
    from worker.signals.tokens import Signer

LIST_CAP = 500
"""Sessions listed per kind of change in diff.json; the counts are always complete."""
CHANGE_KINDS = ("newly_revoked", "no_longer_revoked", "revoked_at_other_time",
                "newly_stepped_up", "no_longer_stepped_up", "changed_expiry",
                "changed_idle_expiry", "changed_cookie_mode")


@dataclass(slots=True)
class Digest:
    """What a policy did to one session, from its commands."""

    tenant: str = ""
    user_id: str | None = None
    revoked_at: str | None = None
    revoke_reason: str | None = None
    revoke_detectors: tuple[str, ...] = ()
    step_ups: int = 0
    first_step_up: str | None = None
    step_up_detectors: tuple[str, ...] = ()
    expires_at: str | None = None
    idle_expires_at: str | None = None
    cookie_mode: str | None = None

    def add(self, cmd: dict[str, Any]) -> None:
        kind = cmd.get("type")
        self.tenant = cmd.get("tenant") or self.tenant
        self.user_id = cmd.get("user_id") or self.user_id
        detectors = tuple(sorted({str(d.get("detector")) for d in cmd.get("detections") or ()}))
        if kind == "revoke_session":
            self.revoked_at = cmd.get("issued_at")
            self.revoke_reason = cmd.get("reason")
            self.revoke_detectors = detectors
        elif kind == "require_reauthentication":
            self.step_ups += 1
            if self.first_step_up is None:
                self.first_step_up = cmd.get("issued_at")
                self.step_up_detectors = detectors
        elif kind == "set_expires_at":
            self.expires_at = cmd.get("expires_at")
        elif kind == "set_idle_expires_at":
            self.idle_expires_at = cmd.get("idle_expires_at")
        elif kind == "set_cookie_mode":
            self.cookie_mode = cmd.get("mode")


@dataclass(slots=True)
class Side:
    """One policy's run: digests per session and the run's summary."""

    label: str
    policy_version: str | None = None
    digests: dict[str, Digest] = field(default_factory=dict)
    summary: dict[str, Any] = field(default_factory=dict)

    def add(self, cmd: dict[str, Any]) -> None:
        sid = cmd.get("session_id")
        if isinstance(sid, str):
            digest = self.digests.get(sid)
            if digest is None:
                digest = self.digests[sid] = Digest()
            digest.add(cmd)

    def trace(self, event: SessionEvent, ev: EnrichedEvent, before: Baseline | None,
              decision: Decision) -> None:
        """The pipeline trace hook: digest the decision's commands."""
        for cmd in decision.commands:
            self.add(cmd)


def digest_outputs(out_dir: Path, label: str) -> Side:
    """A side from an existing replay directory."""
    summary_file = out_dir / SUMMARY
    try:
        summary = loads(summary_file.read_bytes())
    except (OSError, JSONDecodeError):
        from worker.errors import CouldNotRun  # noqa: PLC0415

        raise CouldNotRun(f"{out_dir} is not a replay output directory (no readable "
                          f"{SUMMARY})") from None
    side = Side(label, summary.get("policy_version"), summary=summary)
    path = out_dir / "commands.jsonl"
    if path.exists():
        with path.open("rb") as fh:
            for line in fh:
                try:
                    side.add(loads(line))
                except (JSONDecodeError, AttributeError):
                    continue
    return side


def replay_two(inputs: Sequence[InputFile], out_dir: Path, base: Policy, candidate: Policy,
               enricher: Enricher, fmt: str = "auto", signer: Signer | None = None,
               manifest: dict[str, Any] | None = None,
               progress_stream: IO[str] | None = None) -> tuple[Side, Side]:
    """One pass, two policies: the candidate's outputs go to out_dir (atomically)."""
    names = [*OUTPUT_FILES, SUMMARY, JWKS_FILE, *REPORT_FILES]
    target = OutputDir(out_dir, names)
    a = Side("base", base.version)
    b = Side("candidate", candidate.version)
    pa = Pipeline(enricher, base, fmt)
    pb = Pipeline(enricher, candidate, fmt, signer)
    pa.trace, pb.trace = a.trace, b.trace
    store_a = MemoryStore()
    store_b = MemoryStore()
    out_a, out_b = Outputs(), Outputs()
    progress = Progress(sum(i.size for i in inputs), progress_stream)
    done = 0
    try:
        with ExitStack() as stack:
            sinks = [stack.enter_context(target.path(n).open("wb")) for n in OUTPUT_FILES]
            for inp in inputs:
                for lineno, raw in iter_input_records(inp):
                    origin = {"file": inp.name, "line": lineno}
                    outcomes = decode_line(raw, fmt)
                    pa.process_decoded(raw, outcomes, origin, store_a, out_a)
                    pb.process_decoded(raw, outcomes, origin, store_b, out_b)
                    out_a.clear()
                    done += len(raw)
                    if len(out_b.audit) + len(out_b.commands) >= 4096:
                        write_records(out_b, sinks)
                        progress.update(done, pb.stats.events_read)
            write_records(out_b, sinks)
        progress.done()
        a.summary = pa.stats.summary(sessions=len(store_a))
        a.summary["policy_version"] = base.version
        b.summary = pb.stats.summary(sessions=len(store_b))
        b.summary["policy_version"] = candidate.version
        if signer is not None:
            target.path(JWKS_FILE).write_bytes(dumps_pretty(signer.jwks()))
        if manifest is not None:
            target.path(RUN_FILE).write_bytes(dumps_pretty(manifest))
        target.path(SUMMARY).write_bytes(dumps_pretty(b.summary))
    except BaseException:
        target.abort()
        raise
    target.commit()
    return a, b


def _entry(sid: str, d: Digest, **extra: Any) -> dict[str, Any]:
    return {"session_id": sid, "tenant": d.tenant, "user_id": d.user_id, **extra}


def compare(a: Side, b: Side) -> dict[str, Any]:
    """The diff.json content: per-session changes from a (base) to b (candidate)."""
    changes: dict[str, list[dict[str, Any]]] = {k: [] for k in CHANGE_KINDS}
    by_detector: dict[str, Counter[str]] = {}
    empty = Digest()

    def blame(detectors: tuple[str, ...], kind: str) -> None:
        for name in detectors or ("(none named)",):
            by_detector.setdefault(name, Counter())[kind] += 1

    for sid in sorted(a.digests.keys() | b.digests.keys()):
        x, y = a.digests.get(sid, empty), b.digests.get(sid, empty)
        who = y if y is not empty else x
        if y.revoked_at and not x.revoked_at:
            changes["newly_revoked"].append(_entry(sid, who, at=y.revoked_at,
                                                   reason=y.revoke_reason,
                                                   detectors=list(y.revoke_detectors)))
            blame(y.revoke_detectors, "newly_revoked")
        elif x.revoked_at and not y.revoked_at:
            changes["no_longer_revoked"].append(_entry(sid, who, was_at=x.revoked_at,
                                                       was_reason=x.revoke_reason,
                                                       detectors=list(x.revoke_detectors)))
            blame(x.revoke_detectors, "no_longer_revoked")
        elif x.revoked_at and x.revoked_at != y.revoked_at:
            changes["revoked_at_other_time"].append(_entry(sid, who, was_at=x.revoked_at,
                                                           at=y.revoked_at,
                                                           detectors=list(y.revoke_detectors)))
            blame(y.revoke_detectors, "revoked_at_other_time")
        if y.step_ups and not x.step_ups:
            changes["newly_stepped_up"].append(_entry(sid, who, at=y.first_step_up,
                                                      detectors=list(y.step_up_detectors)))
            blame(y.step_up_detectors, "newly_stepped_up")
        elif x.step_ups and not y.step_ups:
            changes["no_longer_stepped_up"].append(_entry(sid, who, was_at=x.first_step_up,
                                                          detectors=list(x.step_up_detectors)))
            blame(x.step_up_detectors, "no_longer_stepped_up")
        if x.expires_at != y.expires_at:
            changes["changed_expiry"].append(_entry(sid, who, was=x.expires_at, now=y.expires_at))
        if x.idle_expires_at != y.idle_expires_at:
            changes["changed_idle_expiry"].append(_entry(sid, who, was=x.idle_expires_at,
                                                         now=y.idle_expires_at))
        if x.cookie_mode != y.cookie_mode:
            changes["changed_cookie_mode"].append(_entry(sid, who, was=x.cookie_mode,
                                                         now=y.cookie_mode))
    fa = a.summary.get("findings_by_detector") or {}
    fb = b.summary.get("findings_by_detector") or {}
    return {
        "base": {"label": a.label, "policy_version": a.policy_version},
        "candidate": {"label": b.label, "policy_version": b.policy_version},
        "sessions_compared": len(a.digests.keys() | b.digests.keys()),
        "counts": {k: len(v) for k, v in changes.items()},
        "by_detector": {name: dict(sorted(c.items()))
                        for name, c in sorted(by_detector.items())},
        "findings_by_detector": {key: {"base": fa.get(key, 0), "candidate": fb.get(key, 0)}
                                 for key in sorted(fa.keys() | fb.keys())},
        "commands_by_type": _pairs(a.summary.get("commands_by_type") or {},
                                   b.summary.get("commands_by_type") or {}),
        "sessions": {k: v[:LIST_CAP] for k, v in changes.items()},
        "list_cap": LIST_CAP,
    }


def _pairs(a: dict[str, int], b: dict[str, int]) -> dict[str, dict[str, int]]:
    return {k: {"base": a.get(k, 0), "candidate": b.get(k, 0)} for k in sorted(a.keys() | b.keys())}
