"""The score as a readable table (rich) for a terminal or a CI log."""

from __future__ import annotations

from typing import IO, Any

from rich.console import Console
from rich.table import Table


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def render(report: dict[str, Any], stream: IO[str], width: int | None = None) -> None:
    """Print the per-scenario tables and the overall rates."""
    console = Console(file=stream, width=width or 120, highlight=False, soft_wrap=False)
    rows = report["scenarios"]
    hij = Table(title="Hijacked sessions (from the attacker's first request on)",
                title_justify="left")
    for col in ("scenario", "sessions", "revoked", "stepped up", "only alerted", "missed",
                "acted before attack", "acted on 1st request"):
        if col == "scenario":
            hij.add_column(col, no_wrap=True, min_width=24)
        else:
            hij.add_column(col, justify="right")
    for r in (r for r in rows if r["label"] == "hijack"):
        hij.add_row(r["scenario"], str(r["sessions"]), _pct(r["revoked_rate"]),
                    _pct(r["stepped_up_rate"]), _pct(r["alerted_rate"]), _pct(r["missed_rate"]),
                    _pct(r["acted_before_attack_rate"]), _pct(r["acted_on_first_request_rate"]))
    ben = Table(title="Benign sessions", title_justify="left")
    for col in ("scenario", "phase", "sessions", "false revoke", "false step-up", "alerted"):
        if col in ("scenario", "phase"):
            ben.add_column(col, no_wrap=True)
        else:
            ben.add_column(col, justify="right")
    for r in (r for r in rows if r["label"] == "benign"):
        ben.add_row(r["scenario"], r["phase"], str(r["sessions"]),
                    _pct(r["false_revoke_rate"]), _pct(r["false_step_up_rate"]),
                    _pct(r["alert_rate"]))
    o = report["overall"]
    tot = Table(title="Overall", title_justify="left", show_header=False)
    tot.add_column("measure")
    tot.add_column("value", justify="right")
    for name, value in (
        ("hijacks acted on (revoked or stepped up)", o["hijack_acted_rate"]),
        ("hijacks acted on at the attacker's first request",
         o["hijack_acted_on_first_request_rate"]),
        ("hijacks revoked", o["hijack_revoked_rate"]),
        ("hijacks stepped up (not revoked)", o["hijack_stepped_up_rate"]),
        ("hijacks only alerted", o["hijack_only_alerted_rate"]),
        ("hijacks missed", o["hijack_missed_rate"]),
        ("benign sessions falsely revoked", o["benign_false_revoke_rate"]),
        ("benign sessions falsely stepped up", o["benign_false_step_up_rate"]),
        ("  ... staying in the user's known countries",
         o["benign_known_countries_false_step_up_rate"]),
        ("learning-period sessions falsely revoked", o["learning_false_revoke_rate"]),
    ):
        tot.add_row(name, _pct(value))
    for table in (hij, ben, tot):
        console.print(table)
    i = report["inputs"]
    console.print(f"{i['labelled_sessions']} labelled sessions ({o['hijack_sessions']} hijacked, "
                  f"{o['benign_sessions']} benign evaluated, {o['learning_sessions']} learning); "
                  f"{i['acting_commands_unlabelled']} revoke/step-up commands and "
                  f"{i['alerts_unlabelled']} alerts on unlabelled sessions")
