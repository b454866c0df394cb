"""The Kafka worker's pure parts, without a broker.

Why: the at-least-once argument rests on `evaluate_batch` (outputs first,
baseline writes tagged with their source record) giving exactly the decisions
replay gives, batch boundaries or not; and on DLQ headers/keys being right.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import orjson
import pytest

from detectors import Baseline
from worker.codec import baseline_from_bytes, baseline_to_bytes, profile_from_bytes
from worker.enrich import Enricher
from worker.kafka.batch import (
    PROFILE_PREFIX,
    BatchStore,
    Emitted,
    dlq_headers,
    evaluate_batch,
)
from worker.pipeline import MemoryStore, Outputs, Pipeline
from worker.replay import iter_records

SAMPLES = Path(__file__).resolve().parent.parent / "fixtures" / "idp_samples"
UA = ("Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
      "Chrome/120.0.0.0 Safari/537.36")


def native(event_id: str, session: str, at: str, ip: str, asn: str, kind: str = "login",
           **extra: object) -> bytes:
    record: dict[str, object] = {
        "event_id": event_id, "type": kind, "occurred_at": at, "tenant": "acme",
        "session": {"id": session}, "user": {"id": "auth0|1"},
        "request": {"ip": ip, "asn": asn, "user_agent": UA}, **extra}
    return orjson.dumps(record)


LOGIN = native("x-1", "s-1", "2026-11-01T00:00:00.000Z", "81.2.69.142", "AS1221",
               organization={"id": "org_1", "metadata": {"idle_session_timeout": "900000"}})
ASN_CHANGE = native("x-2", "s-1", "2026-11-01T00:05:00.000Z", "216.160.83.56", "AS7018",
                    kind="interaction")


@dataclass
class Msg:
    """Stand-in for a consumed Kafka record (Faust's Message has these fields)."""

    value: bytes | None
    key: bytes | None = None
    topic: str = "in"
    partition: int = 0
    offset: int = 0
    timestamp: float | None = 1.0


def kinds(emitted: list[Emitted], kind: str) -> list[dict[str, object]]:
    return [orjson.loads(e.value) for e in emitted if e.kind == kind]


def test_every_output_is_keyed_by_its_session_id(enricher: Enricher) -> None:
    from detectors import DEFAULT_POLICY  # noqa: PLC0415

    msgs = [Msg(LOGIN, offset=0), Msg(ASN_CHANGE, offset=1)]
    result = evaluate_batch(msgs, Pipeline(enricher, DEFAULT_POLICY), lambda k, i: None)
    outputs = [e for e in result.emitted if e.kind != "dlq"]
    assert {e.kind for e in outputs} == {"commands", "audit", "alerts"}
    for e in outputs:
        record = orjson.loads(e.value)
        sid = record.get("session_id") or record["evidences"][0]["actor"]["session"]["uid"]
        assert e.key == sid.encode()


def test_dlq_headers_carry_reason_source_and_origin() -> None:
    dead = {"error": "not JSON: unexpected character", "source": "native",
            "origin": {"topic": "in", "partition": 3, "offset": 42, "timestamp": None}}
    headers = dict(dlq_headers(dead))
    assert headers["sessionwarden.error"] == b"not JSON: unexpected character"
    assert headers["sessionwarden.error_class"] == b"not JSON"
    assert headers["sessionwarden.source"] == b"native"
    assert headers["sessionwarden.origin.topic"] == b"in"
    assert headers["sessionwarden.origin.partition"] == b"3"
    assert headers["sessionwarden.origin.offset"] == b"42"
    assert "sessionwarden.origin.timestamp" not in headers
    long = dict(dlq_headers({"error": "x" * 5000}))
    assert len(long["sessionwarden.error"]) == 1024
    assert long["sessionwarden.source"] == b"unknown"


def _baseline(pipeline: Pipeline) -> Baseline:
    store = MemoryStore()
    pipeline.process(LOGIN, {}, store, Outputs())
    return store["s-1"]


def test_batch_store_reads_through_once_and_tags_writes(pipeline: Pipeline) -> None:
    """Within a batch the store is replay's: one live object per key, decoded once; the
    writes are encoded once, at the end, tagged with the record that wrote last."""
    stored = baseline_to_bytes(_baseline(pipeline))
    reads: list[tuple[str, int]] = []

    def read(key: str, index: int) -> bytes | None:
        reads.append((key, index))
        return stored if key == "s-1" else None

    store = BatchStore(read)
    store.begin(0)
    first = store.get("s-1")
    assert first is not None and store.get("s-1") is first  # decoded once per batch
    assert store.get("s-9") is None and store.get("s-9") is None
    assert reads == [("s-1", 0), ("s-9", 0)]
    assert store.writes == {}, "reads write nothing"
    store.begin(5)
    first.events_seen = 99
    store["s-1"] = first
    store.begin(6)
    first.events_seen = 100  # later in-place updates reach the one encoding
    store["s-1"] = first
    assert store.writes == {"s-1": (baseline_to_bytes(first), 6)}
    again = store.get("s-1")
    assert again is not None and again.events_seen == 100


def test_a_record_that_fails_after_updating_state_leaves_nothing_behind(
        pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    """The engine updates baselines in place, so a record that raises half-way is undone
    by evaluating the batch again without it: state and counters as if it never ran."""
    import worker.pipeline as pipeline_module  # noqa: PLC0415

    real = pipeline_module.evaluate

    def half_way(enriched, baseline, policy, profile=None):  # type: ignore[no-untyped-def]
        decision = real(enriched, baseline, policy, profile)  # baseline updated in place
        if enriched.event.event_id == "x-2":
            raise RuntimeError("boom")
        return decision

    clean = Pipeline(pipeline.enricher, pipeline.policy)
    expected = evaluate_batch([Msg(LOGIN, b"s-1")], clean, lambda key, index: None)
    monkeypatch.setattr(pipeline_module, "evaluate", half_way)
    msgs = [Msg(LOGIN, b"s-1"), Msg(ASN_CHANGE, b"s-1", offset=1)]
    result = evaluate_batch(msgs, pipeline, lambda key, index: None)
    assert result.internal_errors == 1
    assert result.writes == expected.writes
    assert [e.value for e in result.emitted if e.kind != "dlq"] == \
        [e.value for e in expected.emitted]
    assert pipeline.stats.events_processed == 1
    assert pipeline.stats.dead_letters == 1
    assert pipeline.stats.dead_by_reason == {"internal: RuntimeError": 1}


def test_batch_emits_outputs_first_and_tags_each_write_with_its_source(
        pipeline: Pipeline) -> None:
    msgs = [Msg(LOGIN, b"s-1", offset=0), Msg(b"not json {", None, offset=1),
            Msg(ASN_CHANGE, b"s-1", offset=2)]
    result = evaluate_batch(msgs, pipeline, lambda key, index: None)
    commands = kinds(result.emitted, "commands")
    assert [c["type"] for c in commands] == ["set_idle_expires_at", "require_reauthentication",
                                             "set_idle_expires_at"]
    assert all(e.key == b"s-1" for e in result.emitted if e.kind != "dlq")
    dlq = [e for e in result.emitted if e.kind == "dlq"]
    assert len(dlq) == 1 and dlq[0].value == b"not json {" and dlq[0].key is None
    assert dict(dlq[0].headers)["sessionwarden.origin.offset"] == b"1"
    profile_key = PROFILE_PREFIX + "acme\x1fauth0|1"
    assert set(result.writes) == {"s-1", profile_key}, "the user's profile rides along"
    data, index = result.writes["s-1"]
    assert index == 2  # the ASN change wrote last: its partition gets the changelog record
    assert baseline_from_bytes(data).step_up is not None
    assert "AS1221" in profile_from_bytes(result.writes[profile_key][0]).networks
    assert result.unkeyed == 1


def test_a_record_that_makes_the_pipeline_raise_is_dead_lettered_and_rolled_back(
        pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    real = pipeline.enricher.enrich

    def flaky(event):  # type: ignore[no-untyped-def]
        if event.event_id == "x-2":
            raise RuntimeError("boom")
        return real(event)

    monkeypatch.setattr(pipeline.enricher, "enrich", flaky)
    msgs = [Msg(LOGIN, b"s-1"), Msg(ASN_CHANGE, b"s-1", offset=1)]
    result = evaluate_batch(msgs, pipeline, lambda key, index: None)
    assert result.internal_errors == 1
    dlq = [e for e in result.emitted if e.kind == "dlq"]
    assert len(dlq) == 1 and dlq[0].value == ASN_CHANGE
    assert dict(dlq[0].headers)["sessionwarden.error"].startswith(b"internal error: RuntimeError")
    assert result.writes["s-1"][1] == 0  # the failed record left no write behind
    assert not baseline_from_bytes(result.writes["s-1"][0]).revoked


def _records(path: Path) -> list[bytes]:
    return [raw.rstrip(b"\r\n") for _n, raw in iter_records(path)]


@pytest.mark.parametrize("batch_size", [1, 7, 1000])
def test_batches_decide_exactly_like_replay(enricher: Enricher, batch_size: int) -> None:
    """Same commands/audit/alerts/dead letters in the same order, whatever the batching."""
    from detectors import DEFAULT_POLICY  # noqa: PLC0415

    records = [r for f in ("auth0.jsonl", "okta.jsonl", "keycloak.jsonl", "keycloak.log")
               for r in _records(SAMPLES / f)] + [LOGIN, b"", b"[1]", ASN_CHANGE]
    replay_pipeline, live_pipeline = (Pipeline(enricher, DEFAULT_POLICY) for _ in range(2))
    expected = Outputs()
    baselines = MemoryStore()
    for raw in records:
        replay_pipeline.process(raw, {}, baselines, expected)

    table: dict[str, bytes] = {}
    got = Outputs()
    dlq: list[Emitted] = []
    for start in range(0, len(records), batch_size):
        chunk = records[start:start + batch_size]
        msgs = [Msg(raw, offset=start + i) for i, raw in enumerate(chunk)]
        result = evaluate_batch(msgs, live_pipeline, lambda key, index: table.get(key))
        for kind, sink in (("commands", got.commands), ("audit", got.audit),
                           ("alerts", got.alerts)):
            sink.extend((e.key, e.value) for e in result.emitted if e.kind == kind)
        dlq.extend(e for e in result.emitted if e.kind == "dlq")
        table.update({key: data for key, (data, _i) in result.writes.items()})
    assert expected.commands, "the samples must produce commands for this test to mean much"
    assert got.commands == expected.commands
    assert got.audit == expected.audit
    assert got.alerts == expected.alerts
    assert len(dlq) == len(expected.dead)
    live = {k: baseline_from_bytes(v) for k, v in table.items()
            if not k.startswith(PROFILE_PREFIX)}
    profiles = {k.removeprefix(PROFILE_PREFIX): profile_from_bytes(v)
                for k, v in table.items() if k.startswith(PROFILE_PREFIX)}
    assert profiles == baselines.profiles, "user profiles too: replay-equal"
    assert all(b.position is not None for b in live.values()), "the worker keeps positions"
    assert {k: replace(b, position=None) for k, b in live.items()} == baselines
    assert live_pipeline.stats.summary() == replay_pipeline.stats.summary()
