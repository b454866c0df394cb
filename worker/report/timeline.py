"""Per-session timelines: every event of an acted-on session, as the engine saw it.

The outputs hold only the events that produced a record; an analyst needs
the whole history (where the session started, every IP and device since,
the baseline at each step). So the report re-runs the recorded input through
the same `Pipeline`, with the recorded policy and databases (`run.json`),
and evaluates only the events of the selected sessions and of their users
(decisions depend on nothing else), watching each decision through the
pipeline's trace hook. The revokes and step-ups of the re-run are checked
against `commands.jsonl`: a changed input, policy or database shows as a
warning, never as a silently different story.

When the input cannot be read again (stdin, moved files), the timelines are
derived from the alerts alone and say so.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detectors import Baseline, Decision, EnrichedEvent, SessionEvent
from detectors.timefmt import format_time
from worker.codec import JSONDecodeError, loads
from worker.enrich import Enricher
from worker.errors import CouldNotRun
from worker.formats import decode_line
from worker.inputs import InputFile
from worker.inputs import iter_records as iter_input_records
from worker.pipeline import MemoryStore, Outputs, Pipeline
from worker.policy_file import load_policy
from worker.report.manifest import settings_of
from worker.report.outputs import ACTING_TYPES

FIRST_EVENTS = 40
"""Events always shown at the start of a timeline; later ones only when something happened."""
MAX_EVENTS = 300
"""Events shown per timeline at most; the rest are counted and left to the JSONL files."""
_COMMAND_FIELDS = ("reason", "expires_at", "idle_expires_at", "mode", "clamped",
                   "preserve_refresh_tokens")


@dataclass(slots=True)
class Timelines:
    """Timeline rows per session, user agents stored once."""

    rows: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    hidden: dict[str, int] = field(default_factory=dict)
    """Routine events left out of a long timeline, per session."""
    agents: list[str] = field(default_factory=list)
    source: str = "rerun"
    """rerun: the whole history; alerts: only events that raised an alert (input unreadable)."""
    note: str | None = None
    """Why the timelines are partial or may disagree with the outputs."""
    acting_ids: set[str] = field(default_factory=set)
    _agent_index: dict[str, int] = field(default_factory=dict)

    def agent(self, ua: str | None) -> int | None:
        if ua is None:
            return None
        index = self._agent_index.get(ua)
        if index is None:
            index = self._agent_index[ua] = len(self.agents)
            self.agents.append(ua)
        return index

    def add(self, sid: str, row: dict[str, Any], notable: bool) -> None:
        rows = self.rows.setdefault(sid, [])
        if len(rows) < FIRST_EVENTS or (notable and len(rows) < MAX_EVENTS):
            rows.append(row)
        else:
            self.hidden[sid] = self.hidden.get(sid, 0) + 1


def _agent_text(ev: EnrichedEvent) -> str | None:
    a = ev.agent
    if a is None:
        return None
    version = f" {a.major}" if a.major is not None else ""
    return f"{a.family}{version} on {a.os_family}"


def _baseline(base: Baseline | None) -> dict[str, Any] | None:
    if base is None:
        return None
    agent = (f"{base.initial_agent_family} on {base.initial_os_family}"
             if base.initial_agent_family else None)
    return {"initial_ip": base.initial_ip, "initial_asn": base.initial_asn,
            "initial_country": base.initial_country, "initial_agent": agent,
            "last_ip": base.last_ip, "last_asn": base.last_asn,
            "events_seen": base.events_seen, "revoked": base.revoked}


def _command(cmd: dict[str, Any]) -> dict[str, Any]:
    return {"type": cmd["type"], "command_id": cmd["command_id"],
            **{k: cmd[k] for k in _COMMAND_FIELDS if cmd.get(k) is not None}}


class _Recorder:
    """The pipeline trace hook: one timeline row per decision of a selected session."""

    def __init__(self, selected: set[str], timelines: Timelines) -> None:
        self.selected = selected
        self.t = timelines

    def __call__(self, event: SessionEvent, ev: EnrichedEvent, before: Baseline | None,
                 decision: Decision) -> None:
        sid = event.session.id
        if sid not in self.selected:
            return
        n = ev.network
        signals = [{"detector": f.detector, "kind": f.kind or None, "action": f.action,
                    "severity": f.severity, "reason": f.reason, "evidence": f.evidence}
                   for f in decision.findings]
        commands = [_command(c) for c in decision.commands]
        for c in decision.commands:
            if c["type"] in ACTING_TYPES:
                self.t.acting_ids.add(c["command_id"])
        acting = any(c["type"] in ACTING_TYPES for c in commands)
        warned = any(a.get("type") == "w" for a in decision.audit)
        note = "duplicate event id: ignored" if decision.duplicate else decision.suppressed
        row: dict[str, Any] = {
            "t": format_time(event.occurred_at), "id": event.event_id,
            "type": event.type.value, "src": event.source,
            "ip": n.ip, "asn": n.asn, "org": n.as_org, "cc": n.country, "city": n.city,
            "private": n.private, "anon": list(n.anonymous),
            "ua": self.t.agent(ev.agent.raw if ev.agent else None), "agent": _agent_text(ev),
            "base": _baseline(before), "signals": signals, "commands": commands,
            "note": note,
        }
        if (signals or acting or warned) and decision.audit:
            row["why"] = decision.audit[0].get("details")
        self.t.add(sid, row, bool(signals or acting or warned or note))


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def prefilter(selected: set[str], users: set[tuple[str, str]]) -> Callable[[bytes], bool] | None:
    """A cheap test that a raw line cannot hold an event of these sessions or users.

    Decoding is most of the re-run's cost, and most lines belong to other
    sessions. Adapters take ids verbatim from JSON strings (or stringify
    numbers), so a JSON line without a backslash escape can concern a
    session only if the id appears between two quotes: `line.split(b'"')`
    has it as a piece. Lines that are not JSON objects or arrays (Keycloak
    text logs), or that contain an escape, are always decoded; with a
    numeric-looking id (a stringified number may be spelt differently) no
    line is skipped.
    """
    ids = selected | {u for _t, u in users}
    if any(_numeric(i) for i in ids):
        return None
    wanted = frozenset(i.encode() for i in ids)

    def may_concern(line: bytes) -> bool:
        return line[:1] not in (b"{", b"[") or b"\\" in line or \
            not wanted.isdisjoint(line.split(b'"'))

    return may_concern


def rerun(manifest: dict[str, Any], policy_version: str | None, selected: set[str],
          users: set[tuple[str, str]], *, skip_lines: bool = True) -> Timelines:
    """Timelines of `selected` sessions from the recorded input (see the module doc).

    Raises CouldNotRun when an input is gone or the policy is not the
    recorded one; the caller then falls back to `from_alerts`.
    """
    settings = settings_of(manifest)
    policy = load_policy(settings.policy_file)
    if policy_version is not None and policy.version != policy_version:
        raise CouldNotRun(f"the policy file now has version {policy.version}, the run used "
                          f"{policy_version}")
    inputs = []
    for item in manifest.get("inputs") or []:
        path = item.get("path")
        if not path or not Path(path).is_file():
            raise CouldNotRun(f"input {item.get('name')} cannot be read again")
        inputs.append(InputFile(str(item.get("name")), Path(path)))
    enricher = Enricher.from_settings(settings)
    timelines = Timelines()
    pipeline = Pipeline(enricher, policy, settings.input_format)
    pipeline.trace = _Recorder(selected, timelines)
    store = MemoryStore()
    out = Outputs()
    fmt = settings.input_format
    may_concern = prefilter(selected, users) if skip_lines else None
    try:
        for inp in inputs:
            for _lineno, raw in iter_input_records(inp):
                if may_concern is not None and not may_concern(raw):
                    continue
                for outcome in decode_line(raw, fmt):
                    if not isinstance(outcome, SessionEvent):
                        continue
                    if outcome.session.id in selected or (
                            outcome.user_id and (outcome.tenant, outcome.user_id) in users):
                        pipeline.process_event(outcome, store, out)
                        out.clear()
    finally:
        enricher.close()
    return timelines


def check(timelines: Timelines, expected: set[str]) -> None:
    """Compare the re-run's revokes/step-ups with commands.jsonl; note a difference."""
    if timelines.acting_ids == expected:
        return
    missing = len(expected - timelines.acting_ids)
    extra = len(timelines.acting_ids - expected)
    timelines.note = (f"the re-run of the input does not match commands.jsonl ({missing} "
                      f"revokes/step-ups missing, {extra} new): the input, a database or the "
                      "code changed since the replay; timelines may not show what happened")


def from_alerts(alerts_file: Path, selected: set[str], reason: str) -> Timelines:
    """Partial timelines when the input cannot be re-read: one row per alerting event."""
    t = Timelines(source="alerts",
                  note=f"{reason}: timelines show only the events that raised alerts")
    by_event: dict[tuple[str, str], dict[str, Any]] = {}
    for rec in _alert_records(alerts_file, selected):
        request, base = rec["evidences"][0], rec["evidences"][1]
        sid = request["actor"]["session"]["uid"]
        related = (rec.get("finding_info") or {}).get("related_events") or [{}]
        key = (sid, str(related[0].get("uid")))
        ours = (rec.get("unmapped") or {}).get("sessionwarden") or {}
        signal = {"detector": ours.get("detector"), "kind": ours.get("kind"),
                  "action": ours.get("finding_action"), "severity": rec.get("severity"),
                  "reason": (rec.get("finding_info") or {}).get("desc"),
                  "evidence": request.get("data")}
        row = by_event.get(key)
        if row is None:
            end = request.get("src_endpoint") or {}
            old = base.get("src_endpoint") or {}
            system, where = end.get("autonomous_system") or {}, end.get("location") or {}
            ua = (request.get("http_request") or {}).get("user_agent")
            row = by_event[key] = {
                "t": rec.get("time_dt"), "id": key[1], "type": None,
                "src": ours.get("event_source"),
                "ip": end.get("ip"), "asn": system.get("number"), "org": system.get("name"),
                "cc": where.get("country"), "city": where.get("city"), "private": False,
                "anon": [], "ua": t.agent(ua), "agent": None,
                "base": {"initial_ip": old.get("ip"),
                         "initial_asn": (old.get("autonomous_system") or {}).get("number"),
                         "initial_country": (old.get("location") or {}).get("country")},
                "signals": [], "commands": [], "note": None}
            t.add(sid, row, True)
        row["signals"].append(signal)
        if rec.get("disposition") == "Access Revoked":
            row["note"] = "session revoked"
    return t


def _alert_records(path: Path, selected: set[str]) -> Iterable[dict[str, Any]]:
    if not path.exists():
        return
    with path.open("rb") as fh:
        for line in fh:
            try:
                rec = loads(line)
                sid = rec["evidences"][0]["actor"]["session"]["uid"]
            except (JSONDecodeError, KeyError, IndexError, TypeError):
                continue
            if sid in selected and len(rec["evidences"]) > 1:
                yield rec
