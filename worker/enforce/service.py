"""What the enforcer does with a batch of commands: decide, apply, report.

`Enforcer` holds the decisions (state, rails, IdP calls); `EnforcerApp`
(app.py) runs it on Kafka. Each batch of `session-commands` records goes
through these steps, in order (docs/enforcement.md explains why each is
where it is):

1. decode and classify every record against the restored state and the
   rails: duplicate (already `done`/`held`: skipped), immediate result
   (unsupported, malformed, dry run, held by the breaker, discarded), or to
   apply;
2. write an `intent` state record for every command to apply and await its
   delivery -- from here a crash leaves the command *in doubt*;
3. apply: sessions in parallel (each target has its own concurrency limit),
   the commands of one session in order; a revoke first takes a token from
   the tenant's rate limit; an in-doubt command is sent only if the IdP
   still has the session;
4. publish the results (`session-enforcement`) and the `done`/`held` state
   records together and await their delivery;
5. commit the batch's offsets.

A crash before 2 completes re-delivers commands that were never sent; between
2 and 4, commands in doubt (probed, not blindly re-sent); after 4, duplicates
that are skipped. No command is lost, none is applied twice, each gets one
result (a held or failed command gets one more when an operator resolves or
retries it).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from worker.enforce.breaker import Breaker
from worker.enforce.commands import DISCARD, RELEASE, RETRY, Control, Invalid, decode
from worker.enforce.metrics import EnforceMetrics
from worker.enforce.rails import EnforcementPolicy
from worker.enforce.ratelimit import TokenBucket
from worker.enforce.results import result
from worker.enforce.state import DONE, HELD, INTENT, Entry, StateStore
from worker.idp.base import REVOKE_TYPES, ApplyResult, Command, IdpClient, Outcome
from worker.settings import Settings

log = logging.getLogger("sessionwarden.enforce")


@dataclass(slots=True)
class Item:
    """One record of the batch and what will happen to it."""

    partition: int
    offset: int
    ts_ms: int
    command: Command | None = None
    outcome: dict[str, Any] | None = None
    """The result record, once known."""
    state: Entry | None = None
    """The state record to write with the result."""
    apply: bool = False
    in_doubt: bool = False
    resolution: str | None = None
    operator: str | None = None
    mode: str = "enforce"


@dataclass(slots=True)
class BatchReport:
    """What one batch did (tests and the benchmark read it)."""

    records: int = 0
    applied: int = 0
    results: int = 0
    duplicates: int = 0
    outcomes: dict[str, int] = field(default_factory=lambda: defaultdict(int))


STEP_UP = "require_reauthentication"
STEP_UP_APPLIED = ("re-authentication: the IdP session was ended (the IdP cannot challenge one "
                   "session), so its next use needs a new login; its refresh tokens stay")


def as_applied(cmd: Command, step_up: str) -> Command:
    """What is sent to the IdP for cmd: a step-up becomes the end of the IdP session.

    No supported IdP can ask one existing session to re-authenticate (Auth0
    does it only inside a post-login Action, Keycloak and Okta not at all).
    Ending the IdP session is the enforceable equivalent: the user's next
    request needs a login, with the IdP's own MFA. Refresh tokens are kept
    (`preserve_refresh_tokens`): a step-up is a doubt, not proof of a theft.
    `enforcement.step_up = "report"` applies nothing instead.
    """
    if cmd.type != STEP_UP or step_up != "end_session":
        return cmd
    return dataclasses.replace(cmd, type="revoke_session",
                               fields={**cmd.fields, "preserve_refresh_tokens": True})


def command_from_entry(entry: Entry) -> Command | None:
    raw = entry.command
    if not isinstance(raw, dict):
        return None
    return Command(command_id=entry.command_id, type=entry.type, tenant=entry.tenant,
                   session_id=entry.session_id, user_id=raw.get("user_id"),
                   issued_at=raw.get("issued_at"), cause_event_id=raw.get("cause_event_id"),
                   fields=raw)


class Enforcer:
    """Decides and applies; Kafka I/O is passed in (`EnforcerApp` wires it)."""

    def __init__(self, rails: EnforcementPolicy, clients: dict[str, IdpClient],
                 metrics: EnforceMetrics | None = None, state: StateStore | None = None) -> None:
        self.rails = rails
        self.clients = clients
        self.metrics = metrics or EnforceMetrics()
        self.state = state or StateStore()
        self.breaker = Breaker()
        self._buckets: dict[str, TokenBucket] = {}
        self._reported: dict[str, tuple[int, int]] = {}

    @classmethod
    def from_settings(cls, settings: Settings) -> Enforcer:
        """Rails from the policy file, one IdP client per tenant from the targets file.

        Raises PolicyError / TargetsError (the CLI's exit 2) when either is unusable.
        """
        from worker.enforce.rails import load_enforcement  # noqa: PLC0415
        from worker.enforce.targets import TargetsError, build_clients, load_targets  # noqa: PLC0415

        rails = load_enforcement(settings.policy_file)
        if settings.targets_file is None:
            raise TargetsError("enforce needs a targets file (--targets or "
                               "SESSIONWARDEN_TARGETS_FILE)")
        return cls(rails, build_clients(load_targets(settings.targets_file)))

    # -- classification ------------------------------------------------------

    def _bucket(self, tenant: str) -> TokenBucket:
        bucket = self._buckets.get(tenant)
        if bucket is None:
            r = self.rails.for_tenant(tenant)
            bucket = self._buckets[tenant] = TokenBucket(r.revocations_per_second,
                                                         r.revocation_burst)
        return bucket

    def _target(self, tenant: str) -> str | None:
        client = self.clients.get(tenant)
        return client.target if client is not None else None

    def _finish(self, item: Item, cmd: Command, outcome: Outcome, *, reason: str | None = None,
                http_status: int | None = None, attempts: int = 0, breaker: str | None = None,
                calls: Any = None, state: str = DONE) -> None:
        item.outcome = result(
            command_id=cmd.command_id, session_id=cmd.session_id, tenant=cmd.tenant,
            type=cmd.type, outcome=outcome, target=self._target(cmd.tenant),
            http_status=http_status, attempts=attempts, reason=reason, mode=item.mode,
            cause_event_id=cmd.cause_event_id, issued_at=cmd.issued_at, in_doubt=item.in_doubt,
            breaker=breaker, resolution=item.resolution, operator=item.operator, calls=calls)
        # Held and failed commands keep their content: an operator may apply them later.
        keep = state == HELD or (outcome is Outcome.FAILED and bool(cmd.fields))
        item.state = Entry(state, cmd.command_id, item.partition, cmd.tenant, cmd.session_id,
                           cmd.type, item.ts_ms, outcome.value, cmd.fields if keep else None,
                           item.resolution, item.operator)

    def classify(self, item: Item, value: bytes | None, key: bytes | None, origin: str,
                 batch_ids: set[str]) -> None:
        """Decide what happens to one record (no I/O)."""
        decoded = decode(value, key, origin)
        if isinstance(decoded, Control):
            self._control(item, decoded, batch_ids)
            return
        if isinstance(decoded, Invalid):
            if decoded.command_id in batch_ids or (
                    (e := self.state.get(decoded.command_id)) is not None and e.state == DONE):
                self.metrics.duplicates.inc()
                return
            batch_ids.add(decoded.command_id)
            cmd = Command(decoded.command_id, decoded.type or "", decoded.tenant,
                          decoded.session_id, None, None, None, {})
            outcome = Outcome.UNSUPPORTED if decoded.unknown_type else Outcome.FAILED
            self._finish(item, cmd, outcome, reason=decoded.reason)
            log.warning("command not usable", extra={"origin": origin, "reason": decoded.reason})
            return
        cmd = decoded
        entry = self.state.get(cmd.command_id)
        if cmd.command_id in batch_ids or (entry is not None and entry.state in (DONE, HELD)):
            self.metrics.duplicates.inc()
            return
        batch_ids.add(cmd.command_id)
        item.command = cmd
        if entry is not None and entry.state == INTENT:  # it already passed the rails
            item.in_doubt = True
            item.resolution, item.operator = entry.resolution, entry.operator
            item.apply = True
            self.metrics.in_doubt.inc()
            return
        self.breaker.observe(cmd.tenant, cmd.session_id, item.ts_ms)
        client = self.clients.get(cmd.tenant)
        if client is None:
            self._finish(item, cmd, Outcome.UNSUPPORTED,
                         reason=f"no enforcement target configured for tenant {cmd.tenant!r}")
            return
        rails = self.rails.for_tenant(cmd.tenant)
        applied = as_applied(cmd, rails.step_up)
        if applied.type not in client.supported:
            self._finish(item, cmd, Outcome.UNSUPPORTED,
                         reason=f"{client.kind} cannot apply {cmd.type}" + (
                             ' (enforcement.step_up = "report")'
                             if cmd.type == STEP_UP and rails.step_up == "report" else ""))
            return
        item.mode = rails.mode
        hold = False
        if applied.type in REVOKE_TYPES and rails.breaker.enabled:
            hold = self.state.has_held(cmd.tenant) or self.breaker.would_trip(
                cmd.tenant, cmd.session_id, item.ts_ms, rails.breaker)
        if rails.mode == "dry_run":
            if applied.type in REVOKE_TYPES and not hold:
                self.breaker.record_revoke(cmd.tenant, cmd.session_id, item.ts_ms)
            self._finish(item, cmd, Outcome.SKIPPED_DRY_RUN,
                         reason="dry run: would have been applied" if not hold else
                         "dry run: the breaker would have held it",
                         breaker="would_hold" if hold else None)
            return
        if hold:
            if not self.state.has_held(cmd.tenant):
                self.metrics.breaker_trips.labels(cmd.tenant).inc()
                log.warning("breaker opened: holding revokes",
                            extra={"tenant": cmd.tenant, "command_id": cmd.command_id})
            revoked, seen = self.breaker.share(cmd.tenant, cmd.session_id, item.ts_ms,
                                               rails.breaker)
            self._finish(item, cmd, Outcome.HELD_BY_BREAKER, breaker="open", state=HELD,
                         reason=f"breaker open: {revoked} of {seen} sessions revoked in "
                                f"{rails.breaker.window_seconds:g}s (threshold "
                                f"{rails.breaker.threshold:g}); awaiting an operator")
            self.state.put(item.state)  # type: ignore[arg-type]  # later revokes see it
            return
        if applied.type in REVOKE_TYPES:
            self.breaker.record_revoke(cmd.tenant, cmd.session_id, item.ts_ms)
        item.apply = True

    def _control(self, item: Item, ctrl: Control, batch_ids: set[str]) -> None:
        """release/discard a held command, or retry a failed one (an operator's decision)."""
        entry = self.state.get(ctrl.command_id)
        resolution = {RELEASE: "released", DISCARD: "discarded", RETRY: "retried"}[ctrl.action]
        in_doubt = (entry is not None and entry.state == INTENT
                    and entry.resolution == resolution)
        if ctrl.action == RETRY:
            matches = entry is not None and entry.state == DONE \
                and entry.outcome == Outcome.FAILED.value
        else:
            matches = entry is not None and entry.state == HELD
        if entry is None or not (matches or in_doubt) or ctrl.command_id in batch_ids:
            self.metrics.controls.labels(ctrl.action, "no").inc()
            log.warning("operator action matches no held or failed command", extra={
                "action": ctrl.action, "command_id": ctrl.command_id, "tenant": ctrl.tenant,
                "state": entry.state if entry else None})
            return
        cmd = command_from_entry(entry)
        if cmd is None:
            self.metrics.controls.labels(ctrl.action, "no").inc()
            return
        batch_ids.add(ctrl.command_id)
        self.metrics.controls.labels(ctrl.action, "yes").inc()
        item.command = cmd
        item.operator = ctrl.operator
        item.partition = entry.partition
        item.ts_ms = entry.ts_ms
        item.in_doubt = in_doubt
        item.resolution = resolution
        if ctrl.action == DISCARD:
            self._finish(item, cmd, Outcome.HELD_BY_BREAKER, breaker="open",
                         reason=f"held command discarded by {ctrl.operator}")
        else:
            item.apply = True
            if as_applied(cmd, self.rails.for_tenant(cmd.tenant).step_up).type in REVOKE_TYPES:
                self.breaker.record_revoke(cmd.tenant, cmd.session_id, entry.ts_ms)

    # -- applying ------------------------------------------------------------

    async def _apply_one(self, item: Item) -> None:
        cmd = item.command
        assert cmd is not None
        client = self.clients.get(cmd.tenant)
        if client is None:  # a target removed while a command was held or in doubt
            self._finish(item, cmd, Outcome.UNSUPPORTED,
                         reason=f"no enforcement target configured for tenant {cmd.tenant!r}")
            return
        started = time.perf_counter()
        applied = as_applied(cmd, self.rails.for_tenant(cmd.tenant).step_up)
        if applied.type in REVOKE_TYPES:
            waited = await self._bucket(cmd.tenant).acquire()
            if waited:
                self.metrics.ratelimit_wait.labels(cmd.tenant).inc(waited)
        outcome: ApplyResult
        try:
            alive = await client.session_alive(applied) if item.in_doubt else None
            if alive is False:
                outcome = ApplyResult(Outcome.ALREADY_GONE, reason=(
                    "in doubt after a restart: the session no longer exists, so the command "
                    "was not sent again"))
            else:
                outcome = await client.apply(applied)
                if applied is not cmd and outcome.reason is None:
                    outcome = dataclasses.replace(outcome, reason=STEP_UP_APPLIED)
        except Exception as exc:  # a bug in a client must not stop the enforcer
            log.exception("applying a command raised", extra={"command_id": cmd.command_id})
            outcome = ApplyResult(Outcome.FAILED, reason=f"internal error: {exc!r}"[:300])
        self.metrics.apply_seconds.labels(client.kind).observe(time.perf_counter() - started)
        for call in outcome.calls:
            self.metrics.idp_calls.labels(client.kind, str(call.status or "none")).inc()
        self._finish(item, cmd, outcome.outcome, reason=outcome.reason,
                     http_status=outcome.http_status, attempts=outcome.attempts,
                     calls=outcome.calls)

    async def apply(self, items: Sequence[Item]) -> None:
        """Sessions in parallel, each session's commands in order."""
        per_session: dict[tuple[str, str], list[Item]] = defaultdict(list)
        for item in items:
            assert item.command is not None
            per_session[(item.command.tenant, item.command.session_id)].append(item)

        async def run(queue: list[Item]) -> None:
            for item in queue:
                await self._apply_one(item)

        await asyncio.gather(*(run(q) for q in per_session.values()))

    def observe_clients(self) -> None:
        """Add the clients' retry and 429 counts since the last call to the metrics."""
        for tenant, client in self.clients.items():
            http = getattr(client, "http", None)
            if http is None:
                continue
            retries, throttled = int(http.retries), int(http.throttled)
            seen = self._reported.get(tenant, (0, 0))
            self.metrics.idp_retries.labels(client.kind).inc(retries - seen[0])
            self.metrics.idp_throttled.labels(client.kind).inc(throttled - seen[1])
            self._reported[tenant] = (retries, throttled)

    def after_results(self, items: Sequence[Item]) -> None:
        """Update memory and gauges once results and states are delivered."""
        tenants: set[str] = set()
        for item in items:
            if item.state is not None:
                self.state.put(item.state)
                tenants.add(item.state.tenant)
            if item.outcome is not None:
                self.metrics.results.labels(item.outcome["tenant"], item.outcome["type"] or "",
                                            item.outcome["outcome"]).inc()
        for tenant in tenants:
            held = self.state.has_held(tenant)
            self.metrics.breaker_open.labels(tenant).set(1 if held else 0)
            self.metrics.held.labels(tenant).set(sum(1 for _ in self.state.held(tenant)))
            if not held and any(i.resolution for i in items if i.state and
                                i.state.tenant == tenant):
                self.breaker.reset(tenant)  # the operator resolved the last held command
        self.metrics.state_entries.set(len(self.state))
        self.observe_clients()

    def rebuild_window(self) -> None:
        """Feed restored states into the breaker (ordered by command time)."""
        for e in sorted(self.state.entries.values(), key=lambda e: e.ts_ms):
            self.breaker.observe(e.tenant, e.session_id, e.ts_ms)
            if e.type in REVOKE_TYPES and e.state in (DONE, INTENT) and e.outcome in (
                    None, Outcome.APPLIED.value, Outcome.ALREADY_GONE.value,
                    Outcome.SKIPPED_DRY_RUN.value):
                self.breaker.record_revoke(e.tenant, e.session_id, e.ts_ms)
        for tenant in {e.tenant for e in self.state.held()}:
            self.metrics.breaker_open.labels(tenant).set(1)
            self.metrics.held.labels(tenant).set(sum(1 for _ in self.state.held(tenant)))


async def close_clients(clients: dict[str, IdpClient]) -> None:
    for client in clients.values():
        with contextlib.suppress(Exception):
            await client.aclose()


def intent_entry(item: Item) -> Entry:
    cmd = item.command
    assert cmd is not None
    return Entry(INTENT, cmd.command_id, item.partition, cmd.tenant, cmd.session_id, cmd.type,
                 item.ts_ms, None, cmd.fields, item.resolution, item.operator)
