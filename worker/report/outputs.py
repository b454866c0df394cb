"""Read a replay's output files once, streaming, into what the report shows.

Every count the page shows next to a `summary.json` number comes from
`summary.json` itself; the JSON Lines files give what the summary does not
have: which sessions were acted on, when, on which networks, and examples of
dead letters. Memory stays bounded by the number of acted-on sessions (an
entry per session with an alert or a revoke/step-up), never by the number of
events: `set_idle_expires_at` commands, most of a large run's records, are
recognised by their bytes and never parsed.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detectors.ocsf import alert_session
from detectors.timefmt import parse_time
from worker.codec import JSONDecodeError, loads
from worker.pipeline import _reason_class

ACTING_TYPES = ("revoke_session", "require_reauthentication")
"""Commands that act on a session (a revoke, a step-up): the report's subject."""
_ACTING_MARKS = tuple(f'"type":"{t}"'.encode() for t in ACTING_TYPES)
DEAD_EXAMPLES = 3
"""Examples kept per dead-letter reason."""
RAW_EXAMPLE_CHARS = 400
MINUTE_MS = 60_000


@dataclass(slots=True)
class SessionRow:
    """One acted-on session, as the searchable table lists it."""

    session_id: str
    tenant: str = ""
    user_id: str | None = None
    revoked_at: int | None = None
    revoke_reason: str | None = None
    stepped_up: int = 0
    alerts: int = 0
    first_at: int | None = None
    last_at: int | None = None
    detectors: Counter[str] = field(default_factory=Counter)
    max_severity: int = 0
    last_ip: str | None = None
    last_asn: int | None = None
    last_country: str | None = None
    command_ids: list[str] = field(default_factory=list)
    """Ids of its revoke and step-up commands (to check the timelines against)."""

    @property
    def outcome(self) -> str:
        if self.revoked_at is not None:
            return "revoked"
        return "stepped up" if self.stepped_up else "alerted"

    def seen(self, at: int | None) -> None:
        if at is None:
            return
        self.first_at = at if self.first_at is None else min(self.first_at, at)
        self.last_at = at if self.last_at is None else max(self.last_at, at)

    def rank(self) -> tuple[int, int, int, str]:
        """Revoked first, then stepped up, then by severity and alert count."""
        level = 2 if self.revoked_at is not None else (1 if self.stepped_up else 0)
        return (-level, -self.max_severity, -self.alerts, self.session_id)


@dataclass(slots=True)
class Collected:
    """Everything the report takes from the output files."""

    sessions: dict[str, SessionRow] = field(default_factory=dict)
    per_minute: Counter[tuple[int, str]] = field(default_factory=Counter)
    """(minute of event time, "detector:action") -> findings."""
    commands_per_minute: Counter[tuple[int, str]] = field(default_factory=Counter)
    """(minute, command type) -> acting commands (revokes, step-ups)."""
    users: Counter[str] = field(default_factory=Counter)
    user_revokes: Counter[str] = field(default_factory=Counter)
    asns: Counter[int] = field(default_factory=Counter)
    asn_names: dict[int, str] = field(default_factory=dict)
    countries: Counter[str] = field(default_factory=Counter)
    detectors: Counter[str] = field(default_factory=Counter)
    revokes_by_tenant: Counter[str] = field(default_factory=Counter)
    dead_examples: dict[str, list[dict[str, Any]]] = field(
        default_factory=lambda: defaultdict(list))
    unreadable: Counter[str] = field(default_factory=Counter)
    """Output lines that did not parse (a damaged or hand-edited directory), per file."""
    time_range: tuple[int, int] | None = None

    def span(self, at: int) -> None:
        lo, hi = self.time_range or (at, at)
        self.time_range = (min(lo, at), max(hi, at))

    def session(self, sid: str) -> SessionRow:
        row = self.sessions.get(sid)
        if row is None:
            row = self.sessions[sid] = SessionRow(sid)
        return row


def _lines(path: Path) -> Iterator[bytes]:
    if not path.exists():
        return
    with path.open("rb") as fh:
        yield from fh


def _time_ms(text: object) -> int | None:
    if not isinstance(text, str):
        return None
    try:
        return parse_time(text)
    except (ValueError, TypeError):
        return None


def collect(out_dir: Path) -> Collected:
    """Aggregate the acting commands, the alerts and the dead letters of a run."""
    c = Collected()
    _commands(out_dir / "commands.jsonl", c)
    _alerts(out_dir / "alerts.jsonl", c)
    _dead(out_dir / "dead_letter.jsonl", c)
    return c


def _commands(path: Path, c: Collected) -> None:
    for line in _lines(path):
        if not any(mark in line for mark in _ACTING_MARKS):
            continue  # expiry and cookie commands: counted by summary.json
        try:
            cmd = loads(line)
        except JSONDecodeError:
            c.unreadable[path.name] += 1
            continue
        sid = cmd.get("session_id")
        if not isinstance(sid, str):
            c.unreadable[path.name] += 1
            continue
        row = c.session(sid)
        row.tenant = cmd.get("tenant") or row.tenant
        row.user_id = cmd.get("user_id") or row.user_id
        at = _time_ms(cmd.get("issued_at"))
        row.seen(at)
        kind = cmd.get("type")
        row.command_ids.append(str(cmd.get("command_id")))
        if kind == "revoke_session":
            row.revoked_at = at if at is not None else 0
            row.revoke_reason = cmd.get("reason")
            c.revokes_by_tenant[row.tenant] += 1
            if row.user_id:
                c.user_revokes[row.user_id] += 1
        else:
            row.stepped_up += 1
        if at is not None:
            c.span(at)
            c.commands_per_minute[at // MINUTE_MS, str(kind)] += 1


def _alerts(path: Path, c: Collected) -> None:
    for line in _lines(path):
        try:
            rec = loads(line)
            sid = alert_session(rec)
        except (JSONDecodeError, AttributeError):
            sid = None
        if sid is None:
            c.unreadable[path.name] += 1
            continue
        ours = (rec.get("unmapped") or {}).get("sessionwarden") or {}
        detector = str(ours.get("detector") or "unknown")
        action = str(ours.get("finding_action") or "alert")
        key = f"{detector}:{action}"
        evidence = rec["evidences"][0]
        endpoint = evidence.get("src_endpoint") or {}
        row = c.session(sid)
        row.tenant = (rec.get("metadata") or {}).get("tenant_uid") or row.tenant
        user = ((evidence.get("actor") or {}).get("user") or {}).get("uid")
        row.user_id = user or row.user_id
        row.alerts += 1
        row.detectors[detector] += 1
        row.max_severity = max(row.max_severity, int(rec.get("severity_id") or 0))
        at = rec.get("time")
        if isinstance(at, int):
            row.seen(at)
            c.span(at)
            c.per_minute[at // MINUTE_MS, key] += 1
            if row.last_at == at:
                _where(row, endpoint)
        c.detectors[key] += 1
        if user:
            c.users[user] += 1
        system = endpoint.get("autonomous_system") or {}
        number = system.get("number")
        if isinstance(number, int):
            c.asns[number] += 1
            if system.get("name"):
                c.asn_names[number] = str(system["name"])
        country = (endpoint.get("location") or {}).get("country")
        if country:
            c.countries[str(country)] += 1


def _where(row: SessionRow, endpoint: dict[str, Any]) -> None:
    row.last_ip = endpoint.get("ip") or row.last_ip
    row.last_asn = (endpoint.get("autonomous_system") or {}).get("number")
    row.last_country = (endpoint.get("location") or {}).get("country")


def _dead(path: Path, c: Collected) -> None:
    for line in _lines(path):
        try:
            rec = loads(line)
        except JSONDecodeError:
            c.unreadable[path.name] += 1
            continue
        reason = f"{rec.get('source')}: {_reason_class(str(rec.get('error')))}"
        examples = c.dead_examples[reason]
        if len(examples) < DEAD_EXAMPLES:
            raw = str(rec.get("raw") or "")
            examples.append({"origin": rec.get("origin"), "error": rec.get("error"),
                             "raw": raw[:RAW_EXAMPLE_CHARS],
                             "raw_cut": len(raw) > RAW_EXAMPLE_CHARS})
