"""Reading what `sessionwarden score` needs: labels, commands and alerts.

Only the few fields the score uses are kept, per labelled session, so a
replay of millions of events (mostly expiry commands) is streamed, not held.
Anything unreadable is a :class:`ScoreInputError`: the CLI exits 2 with it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from detectors.ocsf import alert_session
from detectors.timefmt import TimeFormatError, parse_time

ACTING = {"revoke_session": "revoke", "require_reauthentication": "step_up"}
"""Command types that act on a session, and the response level each one is."""


class ScoreInputError(RuntimeError):
    """An output directory or labels file that cannot be scored."""


@dataclass(frozen=True, slots=True)
class Label:
    """Ground truth for one session, as the labelled generator writes it."""

    session_id: str
    label: str  # benign | hijack
    scenario: str
    phase: str = "evaluation"  # learning | evaluation
    attack_event_id: str | None = None
    attack_at: int | None = None
    attacker_event_ids: frozenset[str] = frozenset()
    stays_in_known_countries: bool = True


@dataclass(frozen=True, slots=True)
class Action:
    """A revoke or step-up command: what, on which event, when."""

    level: str  # revoke | step_up
    cause_event_id: str
    at: int


@dataclass(slots=True)
class SessionRecords:
    """The decisions replay made for one labelled session."""

    actions: list[Action] = field(default_factory=list)
    alerts: list[tuple[int | None, frozenset[str]]] = field(default_factory=list)
    """(time, related event ids) of each alert."""


def _lines(path: Path) -> Iterator[tuple[int, Any]]:
    try:
        fh = path.open("rb")
    except OSError as exc:
        raise ScoreInputError(f"cannot read {path}: {exc.strerror or exc}") from exc
    with fh:
        for n, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                yield n, orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise ScoreInputError(f"{path}:{n}: not JSON ({exc})") from exc


def _time(value: object) -> int | None:
    if value is None:
        return None
    try:
        return parse_time(value)
    except TimeFormatError:
        return None


def read_labels(path: Path) -> dict[str, Label]:
    """Labels by session id; a record without the required fields is an error."""
    if not path.is_file():
        raise ScoreInputError(f"cannot read labels file {path}")
    labels: dict[str, Label] = {}
    for n, rec in _lines(path):
        if not isinstance(rec, dict):
            raise ScoreInputError(f"{path}:{n}: a label must be a JSON object")
        sid, label, scenario = rec.get("session_id"), rec.get("label"), rec.get("scenario")
        if not isinstance(sid, str) or label not in ("benign", "hijack") \
                or not isinstance(scenario, str):
            raise ScoreInputError(f"{path}:{n}: a label needs session_id, label benign|hijack "
                                  f"and scenario")
        attack = rec.get("attack_event_id")
        if label == "hijack" and not isinstance(attack, str):
            raise ScoreInputError(f"{path}:{n}: a hijack label needs attack_event_id")
        attackers = rec.get("attacker_event_ids") or ([attack] if attack else [])
        labels[sid] = Label(
            sid, label, scenario, str(rec.get("phase") or "evaluation"),
            attack if isinstance(attack, str) else None, _time(rec.get("attack_at")),
            frozenset(str(x) for x in attackers),
            bool(rec.get("stays_in_known_countries", True)))
    if not labels:
        raise ScoreInputError(f"labels file {path} has no labels")
    return labels


def alert_session_id(alert: dict[str, Any]) -> str | None:
    """The session an alert is about, wherever the OCSF layout keeps it.

    The alert builder's own answer first (`detectors.ocsf.alert_session`:
    the session of the current request, under ``evidences[0].actor``), then
    the older ``actor.session.uid``, ``unmapped`` and
    ``metadata.correlation_uid`` for outputs of earlier versions.
    """
    uid = alert_session(alert)
    if uid is not None:
        return uid
    actor = alert.get("actor")
    if isinstance(actor, dict):
        uid = (actor.get("session") or {}).get("uid")
        if isinstance(uid, str) and uid:
            return uid
    for evidence in alert.get("evidences") or ():
        if isinstance(evidence, dict):
            uid = ((evidence.get("actor") or {}).get("session") or {}).get("uid")
            if isinstance(uid, str) and uid:
                return uid
    unmapped = alert.get("unmapped")
    if isinstance(unmapped, dict):
        for key in ("session_id", "session_uid"):
            if isinstance(unmapped.get(key), str) and unmapped[key]:
                return str(unmapped[key])
    corr = (alert.get("metadata") or {}).get("correlation_uid")
    return corr if isinstance(corr, str) and corr else None


def _alert_events(alert: dict[str, Any]) -> frozenset[str]:
    info = alert.get("finding_info") or {}
    return frozenset(str(e["uid"]) for e in info.get("related_events") or ()
                     if isinstance(e, dict) and e.get("uid"))


def read_outputs(out_dir: Path, labels: dict[str, Label]) -> tuple[dict[str, SessionRecords],
                                                                  dict[str, int]]:
    """Acting commands and alerts of the labelled sessions, plus counts of the rest."""
    if not out_dir.is_dir():
        raise ScoreInputError(f"cannot read replay output directory {out_dir}")
    records: dict[str, SessionRecords] = {}
    other = {"commands": 0, "acting_commands_unlabelled": 0, "alerts": 0,
             "alerts_unlabelled": 0}
    for n, cmd in _lines(out_dir / "commands.jsonl"):
        other["commands"] += 1
        if not isinstance(cmd, dict):
            raise ScoreInputError(f"{out_dir / 'commands.jsonl'}:{n}: not a command object")
        level = ACTING.get(str(cmd.get("type")))
        if level is None:
            continue
        sid = cmd.get("session_id")
        if sid not in labels:
            other["acting_commands_unlabelled"] += 1
            continue
        at = _time(cmd.get("issued_at"))
        records.setdefault(sid, SessionRecords()).actions.append(
            Action(level, str(cmd.get("cause_event_id")), at if at is not None else 0))
    for n, alert in _lines(out_dir / "alerts.jsonl"):
        other["alerts"] += 1
        if not isinstance(alert, dict):
            raise ScoreInputError(f"{out_dir / 'alerts.jsonl'}:{n}: not an alert object")
        sid = alert_session_id(alert)
        if sid is None or sid not in labels:
            other["alerts_unlabelled"] += 1
            continue
        t = alert.get("time")
        at = t if isinstance(t, int) and not isinstance(t, bool) else _time(alert.get("time_dt"))
        records.setdefault(sid, SessionRecords()).alerts.append((at, _alert_events(alert)))
    return records, other
