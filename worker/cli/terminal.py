"""What a person sees at the end of a run on a terminal (rich), and the machine rule.

Rule, shared by replay and diff: the JSON summary goes to stdout when `--json`
is given or stdout is not a terminal (a pipe, a file, CI); otherwise stdout
gets a short human summary: what happened, where the files and the report
are, and what to open next. Diagnostics stay on stderr either way.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import IO, Any

from worker.inputs import is_terminal


def wants_json(flag: bool, stream: IO[str] | None = None) -> bool:
    """--json, or stdout is not a terminal."""
    return flag or not is_terminal(stream or sys.stdout)


def _n(value: object) -> str:
    return f"{value:,}" if isinstance(value, int) else str(value)


def replay_summary(summary: dict[str, Any], out: Path, elapsed: float,
                   report: Path | None, stream: IO[str] | None = None) -> None:
    """The human end-of-run summary of a replay (or of the candidate side of a diff)."""
    from rich.console import Console  # noqa: PLC0415 - only on a terminal
    from rich.table import Table  # noqa: PLC0415

    console = Console(file=stream or sys.stdout, highlight=False)
    by_type = summary.get("commands_by_type") or {}
    revoked = by_type.get("revoke_session", 0)
    stepped = by_type.get("require_reauthentication", 0)
    console.print(f"[bold]Replayed {_n(summary['events_read'])} records[/bold] in "
                  f"{elapsed:.1f}s: {_n(summary['events_processed'])} events of "
                  f"{_n(summary.get('sessions', 0))} sessions, policy "
                  f"{summary.get('policy_version')}")
    console.print(f"  [red]{_n(revoked)} sessions revoked[/red], [yellow]{_n(stepped)} "
                  f"stepped up[/yellow], {_n(summary['alerts'])} alerts, "
                  f"{_n(summary['commands'])} commands in all")
    extra = [f"{_n(summary['dead_letters'])} dead letters",
             f"{_n(summary['events_skipped'])} skipped", f"{_n(summary['duplicates'])} duplicates"]
    console.print("  " + ", ".join(extra))
    findings = summary.get("findings_by_detector") or {}
    if findings:
        table = Table(title="findings", title_justify="left", show_edge=False, pad_edge=False)
        table.add_column("detector")
        table.add_column("action")
        table.add_column("count", justify="right")
        for key, n in sorted(findings.items(), key=lambda kv: (-kv[1], kv[0])):
            detector, _, action = key.partition(":")
            table.add_row(detector, action, _n(n))
        console.print(table)
    dead = summary.get("dead_by_reason") or {}
    if dead:
        top = sorted(dead.items(), key=lambda kv: (-kv[1], kv[0]))[:3]
        console.print("  most common dead letters: " + "; ".join(f"{r} ({n})" for r, n in top))
    console.print(f"Files in [bold]{out}[/bold]: commands.jsonl, audit.jsonl, alerts.jsonl, "
                  "dead_letter.jsonl, signals.jsonl, summary.json")
    if report is not None:
        console.print(f"Next: open [bold]{report}[/bold] in a browser (the revoked sessions, "
                      "why, and each one's timeline)")
    else:
        console.print(f"Next: [bold]sessionwarden report {out}[/bold] builds report.html "
                      "(or replay with --report)")


def diff_summary(diff: dict[str, Any], out: Path, report: Path | None,
                 stream: IO[str] | None = None) -> None:
    """The human summary of `sessionwarden diff`."""
    from rich.console import Console  # noqa: PLC0415
    from rich.table import Table  # noqa: PLC0415

    console = Console(file=stream or sys.stdout, highlight=False)
    console.print(f"[bold]Policy diff[/bold] {diff['base']['policy_version']} -> "
                  f"{diff['candidate']['policy_version']}: "
                  f"{_n(diff['sessions_compared'])} sessions with commands")
    table = Table(show_edge=False, pad_edge=False)
    table.add_column("change")
    table.add_column("sessions", justify="right")
    for kind, n in diff["counts"].items():
        table.add_row(kind.replace("_", " "), _n(n))
    console.print(table)
    if diff["by_detector"]:
        det = Table(title="per detector", title_justify="left", show_edge=False, pad_edge=False)
        kinds = sorted({k for c in diff["by_detector"].values() for k in c})
        det.add_column("detector")
        for k in kinds:
            det.add_column(k.replace("_", " "), justify="right")
        for name, counts in diff["by_detector"].items():
            det.add_row(name, *(_n(counts.get(k, 0)) for k in kinds))
        console.print(det)
    console.print(f"Details in [bold]{out / 'diff.json'}[/bold]" +
                  (f"; open [bold]{report}[/bold]" if report is not None else
                   f"; `sessionwarden report {out}` shows them with the sessions' timelines"))
