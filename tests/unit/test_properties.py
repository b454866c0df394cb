"""Property tests: no input line crashes the pipeline; every record is accounted for."""

from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detectors import DEFAULT_POLICY
from worker.enrich import Enricher
from worker.pipeline import MemoryStore, Outputs, Pipeline

json_scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
                | st.floats(allow_nan=False) | st.text())
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                           max_leaves=12)
ips = st.sampled_from(["89.160.20.112", "216.160.83.56", "::1", "10.0.0.1", "2600:6000::1",
                       "999.1.1.1", "null", "", "1.128.0.1"])
times = st.sampled_from(["2026-11-27T10:00:00Z", "2026-11-27 10:00:01.5", "bad", 0, -1,
                         1795773600000, None, "2026-02-30T00:00:00Z"])
native_like = st.fixed_dictionaries(
    {"event_id": st.text(max_size=6) | st.integers(0, 99),
     "type": st.sampled_from(["login", "silent_auth", "token_refresh", "interaction", "logout",
                              "nope"]),
     "occurred_at": times,
     "session": st.fixed_dictionaries({"id": st.sampled_from(["s1", "s2", "", 3])},
                                      optional={"created_at": times}),
     "request": st.fixed_dictionaries({"ip": ips}, optional={
         "asn": st.sampled_from(["AS1221", "1221", 5, "x", None]),
         "user_agent": st.sampled_from(["Chrome 120.0.0 / Mac OS X 10.15.7", "", "x / y",
                                        "Mozilla/5.0"]) | st.text(max_size=20)})},
    optional={"connection": st.fixed_dictionaries({"metadata": st.dictionaries(
        st.sampled_from(["session_timeout"]), json_scalars)}) | json_scalars,
              "organization": st.fixed_dictionaries({"metadata": st.dictionaries(
                  st.sampled_from(["idle_session_timeout"]), json_scalars)}) | json_scalars,
              "user": json_values})


def _check(pipeline: Pipeline, lines: list[bytes]) -> None:
    store = MemoryStore()
    out = Outputs()
    for i, line in enumerate(lines):
        pipeline.process(line, {"line": i}, store, out)
    s = pipeline.stats
    assert s.events_read == s.events_processed + s.events_skipped + s.dead_letters
    assert len(out.dead) == s.dead_letters
    assert s.events_read >= len(lines)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(st.binary(max_size=200), max_size=5))
def test_arbitrary_bytes_never_crash(enricher: Enricher, lines: list[bytes]) -> None:
    _check(Pipeline(enricher, DEFAULT_POLICY), lines)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(json_values.map(orjson.dumps), max_size=5))
def test_arbitrary_json_never_crashes(enricher: Enricher, lines: list[bytes]) -> None:
    _check(Pipeline(enricher, DEFAULT_POLICY), lines)


@settings(max_examples=500, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.lists(native_like.map(orjson.dumps), min_size=1, max_size=8))
def test_native_shaped_input_never_crashes(enricher: Enricher, lines: list[bytes]) -> None:
    _check(Pipeline(enricher, DEFAULT_POLICY), lines)
