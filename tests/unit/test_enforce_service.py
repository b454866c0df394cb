"""The enforcer's decisions per batch: idempotency, rails, in-doubt commands, results.

Kafka is replaced by a recording sender (the real loop is exercised in
tests/integration): these tests pin what is written, in which order, for
each kind of record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from detectors.policy import PolicyError, policy_from_mapping
from worker.enforce.app import EnforcerApp
from worker.enforce.commands import DISCARD, RELEASE, RETRY, control_record
from worker.enforce.rails import EnforcementPolicy, enforcement_from_mapping
from worker.enforce.ratelimit import TokenBucket
from worker.enforce.service import Enforcer
from worker.enforce.state import DONE, HELD, INTENT, Entry, StateStore
from worker.enforce.targets import TargetsError, build_clients, load_targets
from worker.idp.base import ApplyResult, Call, Command, Outcome
from worker.settings import Settings

SETTINGS = Settings(results_topic="res", enforce_state_topic="state", commands_topic="cmd")


@dataclass
class FakeClient:
    """An IdP that records what it was asked; sessions in `alive` exist."""

    kind: str = "keycloak"
    target: str = "keycloak:fake"
    supported: frozenset[str] = frozenset({"revoke_session"})
    alive: set[str] = field(default_factory=set)
    applied: list[str] = field(default_factory=list)
    probed: list[str] = field(default_factory=list)

    async def apply(self, command: Command) -> ApplyResult:
        self.applied.append(command.command_id)
        if command.session_id in self.alive:
            if command.type == "revoke_session":
                self.alive.discard(command.session_id)
            return ApplyResult(Outcome.APPLIED, 204, 1, None,
                               [Call("DELETE", f"/s/{command.session_id}", 204)])
        return ApplyResult(Outcome.ALREADY_GONE, 404, 1, None,
                           [Call("DELETE", f"/s/{command.session_id}", 404)])

    async def session_alive(self, command: Command) -> bool | None:
        self.probed.append(command.command_id)
        return command.session_id in self.alive

    async def aclose(self) -> None:
        return None


class Sender:
    """Stands in for BatchSender: records (topic, key, value, partition) and flushes."""

    def __init__(self) -> None:
        self.pending: list[tuple[str, bytes | None, bytes, int | None]] = []
        self.delivered: list[list[tuple[str, bytes | None, bytes, int | None]]] = []

    def add(self, topic: str, key: bytes | None, value: bytes, headers: Any = (),
            partition: int | None = None) -> None:
        self.pending.append((topic, key, value, partition))

    async def flush(self) -> list[Any]:
        self.delivered.append(self.pending)
        self.pending = []
        return []

    def results(self) -> list[dict[str, Any]]:
        return [orjson.loads(v) for flush in self.delivered for t, _k, v, _p in flush
                if t == "res"]

    def states(self) -> list[dict[str, Any]]:
        return [orjson.loads(v) for flush in self.delivered for t, _k, v, _p in flush
                if t == "state"]


def make(rails: dict[str, Any] | None = None, client: FakeClient | None = None,
         state: StateStore | None = None) -> tuple[EnforcerApp, Sender, FakeClient]:
    fake = client or FakeClient()
    enforcer = Enforcer(enforcement_from_mapping(rails or {}), {"acme": fake}, state=state)
    app = EnforcerApp(SETTINGS, enforcer)
    sender = Sender()
    app._sender = sender  # type: ignore[assignment]
    return app, sender, fake


_offset = [0]


def rec(value: dict[str, Any] | bytes, key: str = "s-1", partition: int = 0,
        ts: int = 1_000_000) -> SimpleNamespace:
    _offset[0] += 1
    raw = value if isinstance(value, bytes) else orjson.dumps(value)
    return SimpleNamespace(topic="cmd", partition=partition, offset=_offset[0],
                           key=key.encode(), value=raw, timestamp=ts)


def cmd(cid: str, sid: str = "s-1", kind: str = "revoke_session", tenant: str = "acme",
        **extra: Any) -> dict[str, Any]:
    return {"command_id": cid, "type": kind, "tenant": tenant, "session_id": sid,
            "user_id": "u-1", "issued_at": "2026-11-01T00:00:00.000Z",
            "cause_event_id": f"e-{cid}", "reason": "Invalid network change",
            "preserve_refresh_tokens": False, **extra, "policy_version": "sha256:x"}


async def test_a_command_is_applied_once_even_when_delivered_again() -> None:
    app, sender, fake = make(client=FakeClient(alive={"s-1"}))
    await app.process([rec(cmd("c1")), rec(cmd("c1"))])  # twice in one batch
    await app.process([rec(cmd("c1"))])  # re-delivered later
    assert fake.applied == ["c1"]
    (result,) = sender.results()
    assert result["outcome"] == "applied" and result["http_status"] == 204
    assert result["calls"] == [["DELETE", "/s/s-1", 204]]
    # the intent was delivered in its own flush, before the result
    first, second = sender.delivered[0], sender.delivered[1]
    assert [orjson.loads(v)["state"] for t, _k, v, _p in first] == [INTENT]
    assert {t for t, *_ in second} == {"res", "state"}
    assert app.enforcer.state.get("c1").state == DONE  # type: ignore[union-attr]


async def test_every_record_gets_a_result_with_a_reason() -> None:
    app, sender, fake = make()
    await app.process([
        rec(b"not json", key="k-garbage"),
        rec({"type": "revoke_session"}, key="k-missing"),
        rec(cmd("c2", kind="rotate_keys")),
        rec(cmd("c3", tenant="nobody")),
        rec(cmd("c4", kind="set_expires_at", expires_at="2026-11-02T00:00:00.000Z")),
        rec(cmd("c5", preserve_refresh_tokens="yes")),
    ])
    got = {(r["command_id"].split(":")[0], r["outcome"]) for r in sender.results()}
    assert got == {("invalid", "failed"), ("c2", "unsupported"), ("c3", "unsupported"),
                   ("c4", "unsupported"), ("c5", "failed")}
    assert len(sender.results()) == 6 and fake.applied == []
    reasons = {r["command_id"]: r["reason"] for r in sender.results()}
    assert "no enforcement target configured for tenant 'nobody'" in reasons["c3"]
    assert "keycloak cannot apply set_expires_at" in reasons["c4"]
    assert "unknown command type 'rotate_keys'" in reasons["c2"]
    keys = {r["session_id"] for r in sender.results()}
    assert {"k-garbage", "k-missing"} <= keys  # keyed by the record's key when unreadable


async def test_dry_run_records_what_would_be_applied_and_calls_nothing() -> None:
    app, sender, fake = make({"tenants": {"acme": {"mode": "dry_run"}}},
                             FakeClient(alive={"s-1"}))
    await app.process([rec(cmd("c1"))])
    (result,) = sender.results()
    assert result["outcome"] == "skipped_dry_run" and result["mode"] == "dry_run"
    assert fake.applied == [] and fake.probed == [] and fake.alive == {"s-1"}


BREAKER = {"breaker": {"min_sessions": 3, "threshold": 0.5, "window_seconds": 60}}


async def test_breaker_holds_mass_revocation_until_an_operator_decides() -> None:
    alive = {f"s-{i}" for i in range(6)}
    app, sender, fake = make(BREAKER, FakeClient(alive=set(alive)))
    await app.process([rec(cmd(f"c{i}", f"s-{i}"), key=f"s-{i}") for i in range(6)])
    outcomes = [r["outcome"] for r in sender.results()]
    assert outcomes == ["applied"] * 2 + ["held_by_breaker"] * 4
    assert fake.alive == {"s-2", "s-3", "s-4", "s-5"}
    metrics = app.metrics.render().decode()
    assert 'sessionwarden_enforce_breaker_open{tenant="acme"} 1.0' in metrics
    assert 'sessionwarden_enforce_held_commands{tenant="acme"} 4.0' in metrics
    assert 'sessionwarden_enforce_breaker_trips_total{tenant="acme"} 1.0' in metrics
    # Latched: a lone revoke minutes later is held too, the window alone never closes it.
    await app.process([rec(cmd("late", "s-late"), key="s-late", ts=9_000_000)])
    assert sender.results()[-1]["outcome"] == "held_by_breaker"
    held = sorted(e.command_id for e in app.enforcer.state.held("acme"))
    assert held == ["c2", "c3", "c4", "c5", "late"]
    # Operator: discard one, release the others (also a re-delivered control: ignored).
    controls = [rec(control_record(DISCARD, "c2", "acme", "s-2", "ops"), key="s-2")]
    controls += [rec(control_record(RELEASE, c, "acme", s, "ops"), key=s)
                 for c, s in (("c3", "s-3"), ("c4", "s-4"), ("c5", "s-5"), ("late", "s-late"))]
    await app.process(controls)
    await app.process([rec(control_record(RELEASE, "c3", "acme", "s-3", "ops"), key="s-3")])
    final = {r["command_id"]: r for r in sender.results() if r["resolution"]}
    assert final["c2"]["resolution"] == "discarded" and final["c2"]["operator"] == "ops"
    assert {c: final[c]["outcome"] for c in ("c3", "c4", "c5")} == dict.fromkeys(
        ("c3", "c4", "c5"), "applied")
    assert fake.applied.count("c3") == 1 and "c2" not in fake.applied
    assert fake.alive == {"s-2"}
    assert not list(app.enforcer.state.held("acme"))
    metrics = app.metrics.render().decode()
    assert 'sessionwarden_enforce_breaker_open{tenant="acme"} 0.0' in metrics
    # Closed again: the window was reset by the operator's resolution.
    fake.alive.add("s-new")
    await app.process([rec(cmd("new", "s-new"), key="s-new", ts=9_100_000)])
    assert sender.results()[-1]["outcome"] == "applied"


async def test_breaker_denominator_counts_sessions_with_any_command() -> None:
    """Many sessions with expiry commands: a few revokes stay under the share."""
    client = FakeClient(supported=frozenset({"revoke_session", "set_idle_expires_at"}),
                        alive={f"s-{i}" for i in range(10)})
    app, sender, _fake = make(BREAKER, client)
    idle = [rec(cmd(f"i{i}", f"s-{i}", kind="set_idle_expires_at",
                    idle_expires_at="2026-11-01T01:00:00.000Z"), key=f"s-{i}")
            for i in range(10)]
    await app.process([*idle, *(rec(cmd(f"r{i}", f"s-{i}"), key=f"s-{i}") for i in range(5))])
    revokes = [r["outcome"] for r in sender.results() if r["type"] == "revoke_session"]
    assert revokes == ["applied"] * 5  # 5 of 10 sessions = 0.5, not above the threshold
    await app.process([rec(cmd("r5", "s-5"), key="s-5")])
    assert sender.results()[-1]["outcome"] == "held_by_breaker"  # 6 of 10


async def test_in_doubt_command_is_probed_not_blindly_resent() -> None:
    """A crash after the intent: the session gone means it was applied before."""
    state = StateStore()
    for cid, sid in (("gone", "s-gone"), ("alive", "s-alive")):
        state.put(Entry(INTENT, cid, 0, "acme", sid, "revoke_session", 1_000_000,
                        command=cmd(cid, sid)))
    app, sender, fake = make(client=FakeClient(alive={"s-alive"}), state=state)
    await app.process([rec(cmd("gone", "s-gone"), key="s-gone"),
                       rec(cmd("alive", "s-alive"), key="s-alive")])
    by_id = {r["command_id"]: r for r in sender.results()}
    assert fake.probed == ["gone", "alive"] and fake.applied == ["alive"]
    assert by_id["gone"]["outcome"] == "already_gone" and by_id["gone"]["in_doubt"] is True
    assert by_id["alive"]["outcome"] == "applied" and by_id["alive"]["in_doubt"] is True
    # No second intent was written for them.
    assert not [s for s in sender.states() if s["state"] == INTENT]


async def test_state_records_round_trip_and_restore_the_held_backlog() -> None:
    app, sender, _fake = make(BREAKER, FakeClient(alive={f"s-{i}" for i in range(4)}))
    await app.process([rec(cmd(f"c{i}", f"s-{i}"), key=f"s-{i}", partition=i % 2)
                       for i in range(4)])
    records = [(t, k, v, p) for flush in sender.delivered for t, k, v, p in flush
               if t == "state"]
    restored = StateStore()
    for partition in (0, 1):
        restored.load(partition, [(k, v) for _t, k, v, p in records if p == partition])
    assert {e.command_id: e.state for e in restored.entries.values()} == {
        "c0": DONE, "c1": DONE, "c2": HELD, "c3": HELD}
    held = restored.get("c2")
    assert held is not None and held.command is not None and held.partition == 0
    again, sender2, _fake2 = make(BREAKER, FakeClient(alive={"s-9"}), state=restored)
    again.enforcer.rebuild_window()
    await again.process([rec(cmd("c9", "s-9"), key="s-9")])
    assert sender2.results()[0]["outcome"] == "held_by_breaker"  # still latched after restart
    restored.forget([0])
    assert set(restored.entries) == {"c1", "c3"}


async def test_rate_limit_delays_revokes_never_drops_them() -> None:
    now = [0.0]
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)
        now[0] += seconds

    bucket = TokenBucket(rate=2.0, burst=2, clock=lambda: now[0], sleep=sleep)
    waited = [await bucket.acquire() for _ in range(5)]
    assert waited[:2] == [0.0, 0.0] and all(w > 0 for w in waited[2:])
    assert now[0] == pytest.approx(1.5)  # 3 extra tokens at 2/s


def test_rails_validate_and_resolve_per_tenant() -> None:
    rails = enforcement_from_mapping({"revocations_per_second": 5, "breaker": {"threshold": 0.3},
                                      "tenants": {"acme": {"mode": "dry_run",
                                                           "breaker": {"min_sessions": 7}}}})
    acme, other = rails.for_tenant("acme"), rails.for_tenant("other")
    assert (acme.mode, acme.revocations_per_second, acme.breaker.threshold,
            acme.breaker.min_sessions) == ("dry_run", 5, 0.3, 7)
    assert (other.mode, other.breaker.min_sessions) == ("enforce", 50)
    with pytest.raises(PolicyError, match=r"enforcement\.breaker\.threshhold"):
        enforcement_from_mapping({"breaker": {"threshhold": 0.5}})
    with pytest.raises(PolicyError, match=r"enforcement\.tenants\.acme\.mode"):
        enforcement_from_mapping({"tenants": {"acme": {"mode": "yolo"}}})
    assert EnforcementPolicy().for_tenant("x").breaker.enabled


def test_enforcement_section_does_not_change_the_decision_policy() -> None:
    plain = policy_from_mapping({"detectors": {"asn_binding": {"action": "revoke"}}})
    with_rails = policy_from_mapping({"detectors": {"asn_binding": {"action": "revoke"}},
                                      "enforcement": {"mode": "dry_run"}})
    assert plain.version == with_rails.version


def test_targets_read_secrets_from_the_environment_and_never_show_them(tmp_path: Any) -> None:
    path = tmp_path / "targets.toml"
    path.write_text('[tenants.acme]\nkind = "keycloak"\nbase_url = "http://127.0.0.1:1"\n'
                    'realm = "acme"\nclient_id = "enf"\nclient_secret_env = "KC_SECRET"\n'
                    '[tenants.corp]\nkind = "auth0"\ndomain = "corp.auth0.com"\n'
                    'client_id = "m2m"\nclient_secret_env = "A0_SECRET"\n')
    targets = load_targets(path)
    with pytest.raises(TargetsError, match="KC_SECRET is not set"):
        build_clients(targets, env={"A0_SECRET": "a0-value"})
    clients = build_clients(targets, env={"KC_SECRET": "kc-value", "A0_SECRET": "a0-value"})
    assert {c.kind for c in clients.values()} == {"keycloak", "auth0"}
    assert "kc-value" not in repr(targets) and "kc-value" not in clients["acme"].target
    bad = tmp_path / "bad.toml"
    bad.write_text('[tenants.x]\nkind = "ping"\n')
    with pytest.raises(TargetsError, match=r"tenants\.x"):
        load_targets(bad)


async def test_a_failed_command_is_retried_only_by_an_operator() -> None:
    class Outage(FakeClient):
        down = True

        async def apply(self, command: Command) -> ApplyResult:
            if self.down:
                return ApplyResult(Outcome.FAILED, 503, 5, "gave up after 5 attempts")
            return await super().apply(command)

    client = Outage(alive={"s-1"})
    app, sender, _fake = make(client=client)
    await app.process([rec(cmd("c1"))])
    await app.process([rec(cmd("c1"))])  # a re-delivery is not a retry
    assert [r["outcome"] for r in sender.results()] == ["failed"]
    assert [e.command_id for e in app.enforcer.state.failed("acme")] == ["c1"]
    client.down = False
    await app.process([rec(control_record(RETRY, "c1", "acme", "s-1", "ops"))])
    last = sender.results()[-1]
    assert (last["outcome"], last["resolution"], last["operator"]) == ("applied", "retried", "ops")
    assert client.alive == set() and not list(app.enforcer.state.failed("acme"))
    await app.process([rec(control_record(RETRY, "c1", "acme", "s-1", "ops"))])
    assert len(sender.results()) == 2  # nothing left to retry: no third result


async def test_a_step_up_ends_the_idp_session_and_keeps_its_refresh_tokens() -> None:
    """No IdP can challenge one session: its end is the enforceable re-authentication."""
    seen: list[Command] = []

    class Recording(FakeClient):
        async def apply(self, command: Command) -> ApplyResult:
            seen.append(command)
            return await super().apply(command)

    app, sender, fake = make(client=Recording(alive={"s-1", "s-2"}))
    await app.process([rec(cmd("c1", kind="require_reauthentication"))])
    (result,) = sender.results()
    assert result["outcome"] == "applied" and result["type"] == "require_reauthentication"
    assert "IdP session was ended" in result["reason"]
    (sent,) = seen
    assert sent.type == "revoke_session" and sent.preserve_refresh_tokens
    assert sent.command_id == "c1" and fake.alive == {"s-2"}
    # a tenant that wants step-ups reported only
    app, sender, fake = make({"tenants": {"acme": {"step_up": "report"}}},
                             FakeClient(alive={"s-1"}))
    await app.process([rec(cmd("c2", kind="require_reauthentication"))])
    (result,) = sender.results()
    assert result["outcome"] == "unsupported" and 'step_up = "report"' in result["reason"]
    assert fake.applied == [] and fake.alive == {"s-1"}


async def test_step_ups_count_for_the_breaker_like_revokes() -> None:
    alive = {f"s-{i}" for i in range(6)}
    app, sender, fake = make(BREAKER, FakeClient(alive=set(alive)))
    await app.process([rec(cmd(f"c{i}", sid=f"s-{i}", kind="require_reauthentication"),
                           key=f"s-{i}") for i in range(6)])
    outcomes = [r["outcome"] for r in sender.results()]
    assert "held_by_breaker" in outcomes and "applied" in outcomes
    assert len(fake.applied) == outcomes.count("applied") == 6 - len(fake.alive)
