"""Field limits, output sizes and Kafka re-deliveries in the pipeline (issue 8, items 1 and 3).

Why: one event with a huge field used to make records no topic accepts, and
a re-delivery longer than the 32-id window re-decided old events. These run
the real pipeline (decode, enrich, evaluate) without Kafka; the same cases
run on the real broker in tests/integration/test_worker_hardening.py.
"""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from detectors import DEFAULT_POLICY, Baseline
from worker.enrich import Enricher
from worker.formats import Invalid, decode_line
from worker.formats.limits import MAX_ID, MAX_USER_AGENT
from worker.pipeline import Outputs, Pipeline

UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari"


def event(n: int, sid: str = "s1", **over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "event_id": f"e{n}", "type": "login" if n == 0 else "interaction",
        "occurred_at": 1795773600000 + n * 1000, "tenant": "acme",
        "session": {"id": sid}, "user": {"id": "u1"},
        "organization": {"id": "o", "metadata": {"idle_session_timeout": "900000"}},
        "request": {"ip": "89.160.20.112", "user_agent": UA}}
    doc.update(over)
    return doc


@pytest.mark.parametrize(("field", "doc"), [
    ("event_id", event(1, event_id="x" * 1_000_000)),
    ("session.id", event(1, session={"id": "s" * 1_000_000})),
    ("tenant", event(1, tenant="t" * 1_000_000)),
    ("user.id", event(1, user={"id": "u" * (MAX_ID + 1)})),
    ("user.groups", event(1, user={"id": "u", "groups": ["g"] * 10_000})),
])
def test_oversized_identifiers_are_dead_letters_with_a_reason(field: str,
                                                              doc: dict[str, Any]) -> None:
    [outcome] = decode_line(orjson.dumps(doc))
    assert isinstance(outcome, Invalid)
    assert outcome.reason.startswith(field) and "limit" in outcome.reason
    assert len(outcome.reason) < 200


def test_a_huge_user_agent_is_truncated_and_flagged(enricher: Enricher) -> None:
    doc = event(0, request={"ip": "89.160.20.112", "user_agent": UA + "x" * 400_000})
    [outcome] = decode_line(orjson.dumps(doc))
    assert not isinstance(outcome, Invalid)
    assert outcome.user_agent is not None and len(outcome.user_agent) == MAX_USER_AGENT
    assert outcome.truncated == ("user_agent",)
    out = Outputs()
    Pipeline(enricher, DEFAULT_POLICY).process(orjson.dumps(doc), {}, {}, out)
    [(_key, audit)] = out.audit
    assert len(audit) < 8_000, "the user agent appears once, cut to its limit"
    assert orjson.loads(audit)["details"]["event"]["truncated"] == ["user_agent"]


def test_metadata_keeps_only_what_the_engine_reads() -> None:
    doc = event(0, connection={"name": "c", "metadata": {"session_timeout": "3600000",
                                                          "blob": "x" * 100_000}})
    [outcome] = decode_line(orjson.dumps(doc))
    assert not isinstance(outcome, Invalid)
    assert outcome.connection_metadata == {"session_timeout": "3600000"}


def test_a_decision_whose_records_would_not_fit_is_dead_lettered_unstored(
        enricher: Enricher) -> None:
    pipeline = Pipeline(enricher, DEFAULT_POLICY, max_output_bytes=300)
    store: dict[str, Baseline] = {}
    out = Outputs()
    pipeline.process(orjson.dumps(event(0)), {"file": "f", "line": 1}, store, out)
    assert out.commands == [] and out.audit == []
    [dead] = out.dead
    assert dead["error"].startswith("output record too large")
    assert store == {}, "a decision that cannot be published is not remembered"
    s = pipeline.stats
    assert s.events_read == s.events_processed + s.events_skipped + s.dead_letters


def test_kafka_redelivery_longer_than_the_id_window_decides_nothing(enricher: Enricher) -> None:
    """40 in-order events re-delivered after a crash: replay-equal means no new output."""
    pipeline = Pipeline(enricher, DEFAULT_POLICY)
    store: dict[str, Baseline] = {}
    first = Outputs()
    raws = [orjson.dumps(event(n)) for n in range(40)]

    def origin(offset: int) -> dict[str, Any]:
        return {"topic": "in", "partition": 2, "offset": offset, "timestamp": None}

    for offset, raw in enumerate(raws):
        pipeline.process(raw, origin(offset), store, first)
    assert len(first.commands) == 40, "each event re-applies the organization idle timeout"
    again = Outputs()
    for offset, raw in enumerate(raws):
        pipeline.process(raw, origin(offset), store, again)
    assert (again.commands, again.audit, again.alerts, again.dead) == ([], [], [], [])
    assert pipeline.stats.redelivered == 40


def test_a_recreated_topic_does_not_swallow_new_events(enricher: Enricher) -> None:
    """Offsets restart at 0 on a re-created topic; newer events must still be decided."""
    pipeline = Pipeline(enricher, DEFAULT_POLICY)
    store: dict[str, Baseline] = {}
    out = Outputs()
    for n in range(5):
        pipeline.process(orjson.dumps(event(n)), {"topic": "in", "partition": 0, "offset": 100 + n},
                         store, out)
    before = len(out.commands)
    pipeline.process(orjson.dumps(event(50)), {"topic": "in", "partition": 0, "offset": 0},
                     store, out)
    assert len(out.commands) == before + 1
    assert pipeline.stats.redelivered == 0
