"""Build `report.html` from a replay output directory.

The page is one file: CSS, script, charts (inline SVG) and data (a JSON block)
are inside it, so it opens from disk or an attachment with no network. It is
rebuilt from the files alone and is deterministic (no "generated at" time):
the same outputs give the same bytes. Tables are capped (`TABLE_CAP`
sessions, `TIMELINE_CAP` timelines, `TOP` rows); the page says when it cut
something and links to the JSON Lines files, which hold everything.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from detectors import PolicyError
from detectors.timefmt import format_time
from worker.codec import JSONDecodeError, dumps, loads
from worker.enrich import EnrichmentError
from worker.errors import CouldNotRun
from worker.replay import OUTPUT_FILES, SUMMARY
from worker.report import DIFF_FILE, REPORT_FILE, RUN_FILE
from worker.report.charts import stacked_bars
from worker.report.manifest import read_manifest
from worker.report.outputs import Collected, SessionRow, collect
from worker.report.timeline import Timelines, check, from_alerts, rerun

TABLE_CAP = 1000
"""Acted-on sessions listed in the searchable table."""
TIMELINE_CAP = 200
"""Sessions (the first of the table: revoked, stepped up, most severe) with a timeline."""
TOP = 10
DIFF_SHOWN = 100
"""Sessions shown per kind of change in the diff section (diff.json keeps more)."""


@dataclass(frozen=True, slots=True)
class Built:
    """What `build_report` did, for the terminal and the benchmark."""

    path: Path
    size: int
    seconds: float
    sessions: int
    timelines: int
    timeline_source: str
    note: str | None


def build_report(out_dir: Path, *, timelines: bool = True) -> Built:
    """Write out_dir/report.html (atomically) and say what it holds."""
    started = time.perf_counter()
    try:
        summary = loads((out_dir / SUMMARY).read_bytes())
    except (OSError, JSONDecodeError):
        raise CouldNotRun(f"{out_dir} is not a replay output directory (no readable "
                          f"{SUMMARY}); run `sessionwarden replay FILE --out {out_dir}` first"
                          ) from None
    manifest = read_manifest(out_dir / RUN_FILE)
    collected = collect(out_dir)
    rows = sorted(collected.sessions.values(), key=SessionRow.rank)
    table = rows[:TABLE_CAP]
    chosen = table[:TIMELINE_CAP]
    tl = _timelines(out_dir, manifest, summary, chosen) if timelines and chosen else Timelines()
    diff = _read_json(out_dir / DIFF_FILE)
    html = render(summary, manifest, collected, rows, table, tl, diff)
    target = out_dir / REPORT_FILE
    tmp = out_dir / f".{REPORT_FILE}.tmp"
    data = html.encode()
    try:
        with tmp.open("wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.replace(target)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise CouldNotRun(f"cannot write {target}: {exc.strerror}") from None
    return Built(target, len(data), time.perf_counter() - started, len(rows),
                 len(tl.rows), tl.source, tl.note)


def _read_json(path: Path) -> dict[str, Any] | None:
    try:
        value = loads(path.read_bytes())
    except (OSError, JSONDecodeError):
        return None
    return value if isinstance(value, dict) else None


def _timelines(out_dir: Path, manifest: dict[str, Any] | None, summary: dict[str, Any],
               chosen: list[SessionRow]) -> Timelines:
    selected = {r.session_id for r in chosen}
    users = {(r.tenant, r.user_id) for r in chosen if r.user_id}
    expected = {cid for r in chosen for cid in r.command_ids}
    if manifest is None:
        return from_alerts(out_dir / "alerts.jsonl", selected, f"no {RUN_FILE} in {out_dir}")
    try:
        tl = rerun(manifest, summary.get("policy_version"), selected, users)
    except (CouldNotRun, PolicyError, EnrichmentError, OSError) as exc:
        return from_alerts(out_dir / "alerts.jsonl", selected,
                           " ".join(str(exc).split())[:300])
    check(tl, expected)
    return tl


def _session_dict(r: SessionRow, with_timeline: bool) -> dict[str, Any]:
    return {"sid": r.session_id, "tenant": r.tenant, "user": r.user_id, "outcome": r.outcome,
            "revoked_at": format_time(r.revoked_at) if r.revoked_at is not None else None,
            "reason": r.revoke_reason, "step_ups": r.stepped_up, "alerts": r.alerts,
            "detectors": [f"{k} x{n}" if n > 1 else k for k, n in sorted(r.detectors.items())],
            "first": format_time(r.first_at) if r.first_at is not None else None,
            "last": format_time(r.last_at) if r.last_at is not None else None,
            "ip": r.last_ip, "asn": r.last_asn, "cc": r.last_country,
            "timeline": with_timeline}


def _age_days(built: object, at_ms: int | None) -> int | None:
    """Age of a database at the time of the replayed events (not of the report)."""
    if not isinstance(built, str) or at_ms is None:
        return None
    try:
        day = datetime.strptime(built[:10], "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        return None
    return int((at_ms - day.timestamp() * 1000) // 86_400_000)


def _headline(summary: dict[str, Any], acted: int) -> list[tuple[str, str, int]]:
    by_type = summary.get("commands_by_type") or {}
    items = [("events read", "events_read", summary.get("events_read", 0)),
             ("events processed", "events_processed", summary.get("events_processed", 0)),
             ("sessions", "sessions", summary.get("sessions", 0)),
             ("revoked", "commands_by_type.revoke_session", by_type.get("revoke_session", 0)),
             ("stepped up", "commands_by_type.require_reauthentication",
              by_type.get("require_reauthentication", 0)),
             ("alerts", "alerts", summary.get("alerts", 0)),
             ("commands", "commands", summary.get("commands", 0)),
             ("dead letters", "dead_letters", summary.get("dead_letters", 0)),
             ("skipped", "events_skipped", summary.get("events_skipped", 0)),
             ("duplicates", "duplicates", summary.get("duplicates", 0)),
             ("signals", "signals", summary.get("signals", 0))]
    items.insert(3, ("acted-on sessions", "", acted))
    return items


def render(summary: dict[str, Any], manifest: dict[str, Any] | None, c: Collected,
           rows: list[SessionRow], table: list[SessionRow], tl: Timelines,
           diff: dict[str, Any] | None) -> str:
    """The page as text (see the module doc)."""
    from jinja2 import Environment, PackageLoader, select_autoescape  # noqa: PLC0415

    env = Environment(loader=PackageLoader("worker.report", "templates"),
                      autoescape=select_autoescape(default=True), trim_blocks=True,
                      lstrip_blocks=True)
    findings_svg, findings_series, findings_step = stacked_bars(
        c.per_minute, "findings over event time, per detector and action")
    commands_svg, commands_series, commands_step = stacked_bars(
        c.commands_per_minute, "revokes and step-ups over event time", height=150)
    last_event = c.time_range[1] if c.time_range else None
    facts = (manifest or {}).get("facts") or {}
    databases = [{**d, "age_days": _age_days(d.get("built"), last_event)}
                 for d in facts.get("databases") or []]
    data = {"sessions": [_session_dict(r, r.session_id in tl.rows) for r in table],
            "timelines": tl.rows, "hidden": tl.hidden, "agents": tl.agents}
    dead = sorted((summary.get("dead_by_reason") or {}).items(), key=lambda kv: (-kv[1], kv[0]))
    context = {
        "summary": summary,
        "headline": _headline(summary, len(rows)),
        "policy_version": summary.get("policy_version"),
        "facts": facts,
        "databases": databases,
        "inputs": (manifest or {}).get("inputs") or [],
        "settings": (manifest or {}).get("settings") or {},
        "time_range": [format_time(t) for t in c.time_range] if c.time_range else None,
        "findings_svg": findings_svg, "findings_series": findings_series,
        "findings_step": findings_step,
        "commands_svg": commands_svg, "commands_series": commands_series,
        "commands_step": commands_step,
        "detectors": sorted((summary.get("findings_by_detector") or {}).items(),
                            key=lambda kv: (-kv[1], kv[0])),
        "top_sessions": [_session_dict(r, r.session_id in tl.rows)
                         for r in sorted(rows, key=lambda r: (-r.alerts, r.session_id))[:TOP]],
        "top_users": [(u, n, c.user_revokes.get(u, 0)) for u, n in _top(c.users)],
        "top_asns": [(a, c.asn_names.get(a, ""), n) for a, n in _top(c.asns)],
        "top_countries": _top(c.countries),
        "revokes_by_tenant": _top(c.revokes_by_tenant),
        "acted": len(rows), "table_cap": TABLE_CAP, "table_len": len(table),
        "timeline_cap": TIMELINE_CAP, "timelines": len(tl.rows),
        "timeline_source": tl.source, "timeline_note": tl.note,
        "dead": [(reason, n, c.dead_examples.get(reason, [])) for reason, n in dead],
        "unreadable": dict(c.unreadable),
        "files": [*OUTPUT_FILES, SUMMARY, RUN_FILE],
        "diff": diff, "diff_shown": DIFF_SHOWN,
        "data_json": _script_json(data),
    }
    return env.get_template("report.html.j2").render(**context)


def _top(counter: Any) -> list[Any]:
    return sorted(counter.items(), key=lambda kv: (-kv[1], str(kv[0])))[:TOP]


def _script_json(value: Any) -> str:
    """JSON safe inside <script>: no '<' can close the element or open a comment."""
    return dumps(value).decode().replace("<", "\\u003c")
