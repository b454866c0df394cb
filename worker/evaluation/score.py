"""Each labelled session's outcome, and the rates per scenario and overall.

Hijacks: the strongest response from the attacker's first request on
(``revoked`` > ``stepped_up`` > ``alerted``, else ``missed``), and whether it
came on the attacker's first request or a later one. A session that was
already revoked or stepped up before the attacker arrived is
``acted_before_attack``: protected by accident, counted apart.
Benign sessions: whether they were revoked, stepped up or alerted at all
(false revoke / false step-up rates). Learning-phase sessions are scored as
benign but kept out of the evaluation rates (their own row says how a user's
first sessions fare).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from worker.evaluation.records import Label, SessionRecords, read_labels, read_outputs

HIJACK_OUTCOMES = ("revoked", "stepped_up", "alerted", "missed", "acted_before_attack")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one labelled session."""

    session_id: str
    scenario: str
    label: str
    phase: str
    outcome: str
    """hijack: one of HIJACK_OUTCOMES; benign: revoked | stepped_up | alerted | clean."""
    on_first_request: bool = False
    """hijack: a revoke or step-up was caused by the attacker's first request."""
    acted_on: str | None = None
    """hijack: "first" or "later" request of the attack that the response came on."""
    stepped_up: bool = False
    revoked: bool = False
    stays_in_known_countries: bool = True


def session_outcome(label: Label, rec: SessionRecords | None) -> Outcome:
    """Decide one session's outcome from its label and replay's decisions."""
    rec = rec or SessionRecords()
    revoked = any(a.level == "revoke" for a in rec.actions)
    stepped = any(a.level == "step_up" for a in rec.actions)
    base = Outcome(label.session_id, label.scenario, label.label, label.phase, "clean",
                   stays_in_known_countries=label.stays_in_known_countries)
    if label.label == "benign":
        kind = "revoked" if revoked else "stepped_up" if stepped else \
            "alerted" if rec.alerts else "clean"
        return replace(base, outcome=kind, revoked=revoked, stepped_up=stepped)
    attack_ids = label.attacker_event_ids or frozenset({label.attack_event_id or ""})

    def after(event_id: str, at: int | None) -> bool:
        if event_id in attack_ids:
            return True
        return at is not None and label.attack_at is not None and at >= label.attack_at

    acts = [a for a in rec.actions if after(a.cause_event_id, a.at)]
    first = any(a.cause_event_id == label.attack_event_id for a in acts)
    if acts:
        kind = "revoked" if any(a.level == "revoke" for a in acts) else "stepped_up"
        earliest = min(acts, key=lambda a: a.at)
        return replace(base, outcome=kind, on_first_request=first,
                       acted_on="first" if earliest.cause_event_id == label.attack_event_id
                       else "later", revoked=revoked, stepped_up=stepped)
    if rec.actions:
        return replace(base, outcome="acted_before_attack", revoked=revoked,
                       stepped_up=stepped)
    alerted = any(bool(ids & attack_ids) or after("", at) for at, ids in rec.alerts)
    return replace(base, outcome="alerted" if alerted else "missed")


def _rate(n: int, d: int) -> float | None:
    return round(n / d, 4) if d else None


@dataclass(slots=True)
class ScenarioRow:
    """Counts and rates of one scenario (one row of the table)."""

    scenario: str
    label: str
    phase: str
    sessions: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    first_request: int = 0

    def add(self, o: Outcome) -> None:
        self.sessions += 1
        if o.label == "benign":
            for key, hit in (("revoked", o.revoked), ("stepped_up", o.stepped_up),
                             ("alerted", o.outcome == "alerted")):
                self.counts[key] = self.counts.get(key, 0) + int(hit)
        else:
            self.counts[o.outcome] = self.counts.get(o.outcome, 0) + 1
            self.first_request += int(o.on_first_request)

    def as_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"scenario": self.scenario, "label": self.label,
                             "phase": self.phase, "sessions": self.sessions}
        if self.label == "benign":
            for key in ("revoked", "stepped_up", "alerted"):
                d[key] = self.counts.get(key, 0)
            d["false_revoke_rate"] = _rate(d["revoked"], self.sessions)
            d["false_step_up_rate"] = _rate(d["stepped_up"], self.sessions)
            d["alert_rate"] = _rate(d["alerted"], self.sessions)
        else:
            for key in HIJACK_OUTCOMES:
                d[key] = self.counts.get(key, 0)
                d[f"{key}_rate"] = _rate(d[key], self.sessions)
            d["acted_on_first_request"] = self.first_request
            d["acted_on_first_request_rate"] = _rate(self.first_request, self.sessions)
        return d


def summarize(outcomes: list[Outcome]) -> dict[str, Any]:
    """Per-scenario rows (hijacks, benign, learning) and the overall rates."""
    rows: dict[tuple[str, str, str], ScenarioRow] = {}
    for o in outcomes:
        key = (o.phase, o.label, o.scenario)
        rows.setdefault(key, ScenarioRow(o.scenario, o.label, o.phase)).add(o)
    order = {("evaluation", "hijack"): 0, ("evaluation", "benign"): 1}
    ordered = sorted(rows.values(), key=lambda r: (order.get((r.phase, r.label), 2),
                                                   r.scenario))
    hij = [o for o in outcomes if o.label == "hijack"]
    ben = [o for o in outcomes if o.label == "benign" and o.phase == "evaluation"]
    known = [o for o in ben if o.stays_in_known_countries]
    learn = [o for o in outcomes if o.phase == "learning"]
    acted = sum(o.outcome in ("revoked", "stepped_up") for o in hij)
    overall = {
        "hijack_sessions": len(hij),
        "hijack_acted_rate": _rate(acted, len(hij)),
        "hijack_acted_on_first_request_rate": _rate(sum(o.on_first_request for o in hij),
                                                     len(hij)),
        "hijack_revoked_rate": _rate(sum(o.outcome == "revoked" for o in hij), len(hij)),
        "hijack_stepped_up_rate": _rate(sum(o.outcome == "stepped_up" for o in hij), len(hij)),
        "hijack_only_alerted_rate": _rate(sum(o.outcome == "alerted" for o in hij), len(hij)),
        "hijack_missed_rate": _rate(sum(o.outcome == "missed" for o in hij), len(hij)),
        "hijack_acted_before_attack_rate": _rate(
            sum(o.outcome == "acted_before_attack" for o in hij), len(hij)),
        "benign_sessions": len(ben),
        "benign_false_revoke_rate": _rate(sum(o.revoked for o in ben), len(ben)),
        "benign_false_step_up_rate": _rate(sum(o.stepped_up for o in ben), len(ben)),
        "benign_known_countries_sessions": len(known),
        "benign_known_countries_false_step_up_rate": _rate(sum(o.stepped_up for o in known),
                                                           len(known)),
        "learning_sessions": len(learn),
        "learning_false_revoke_rate": _rate(sum(o.revoked for o in learn), len(learn)),
        "learning_false_step_up_rate": _rate(sum(o.stepped_up for o in learn), len(learn)),
    }
    return {"scenarios": [r.as_dict() for r in ordered], "overall": overall}


def score(out_dir: Path, labels_path: Path) -> dict[str, Any]:
    """Score a replay output directory against a labels file."""
    labels = read_labels(labels_path)
    records, other = read_outputs(out_dir, labels)
    outcomes = [session_outcome(lab, records.get(sid)) for sid, lab in sorted(labels.items())]
    report = summarize(outcomes)
    report["inputs"] = {"out_dir": str(out_dir), "labels": str(labels_path),
                        "labelled_sessions": len(labels), **other}
    report["sessions"] = [asdict(o) for o in outcomes]
    return report
