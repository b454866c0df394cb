"""Decoding records of `session-commands`: commands, operator controls, garbage.

Every record gets an answer: a command is applied (or reported), an operator
control resolves a held command, and anything else -- not JSON, missing
fields, an unknown type -- becomes a result with outcome `failed` or
`unsupported` and the reason. Nothing is dropped silently.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from worker.idp.base import COMMAND_TYPES, Command

RELEASE = "sessionwarden.release_held"
DISCARD = "sessionwarden.discard_held"
RETRY = "sessionwarden.retry_failed"
CONTROL_TYPES = (RELEASE, DISCARD, RETRY)
"""Operator controls, written to `session-commands` by `sessionwarden enforce
release|discard|retry` with the command's session id as key, so that the
enforcer instance owning that partition handles them in order."""
MAX_ID = 256


@dataclass(frozen=True, slots=True)
class Control:
    """An operator's decision about one held command."""

    action: str
    command_id: str
    tenant: str
    session_id: str
    operator: str


@dataclass(frozen=True, slots=True)
class Invalid:
    """A record that is not a usable command; `unknown_type` -> `unsupported`."""

    command_id: str
    session_id: str
    tenant: str
    type: str | None
    reason: str
    unknown_type: bool = False


Decoded = Command | Control | Invalid


def _text(raw: dict[str, Any], name: str, *, required: bool = True) -> str | None:
    value = raw.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, str) or (required and not value) or len(value) > MAX_ID:
        raise ValueError(f"{name} must be a non-empty string of at most {MAX_ID} characters")
    return value


def decode(value: bytes | None, key: bytes | None, origin: str) -> Decoded:
    """One record's value -> Command, Control or Invalid (never raises).

    `origin` ("topic:partition:offset") names a record that has no usable
    command id, so its result can still be told apart and de-duplicated.
    """
    session_key = (key or b"").decode("utf-8", "replace")[:MAX_ID]
    fallback = f"invalid:{origin}"
    try:
        raw = orjson.loads(value or b"")
    except orjson.JSONDecodeError as exc:
        return Invalid(fallback, session_key, "", None, f"malformed command: not JSON ({exc})")
    if not isinstance(raw, dict):
        return Invalid(fallback, session_key, "", None, "malformed command: not a JSON object")
    cid = raw.get("command_id")
    command_id = cid if isinstance(cid, str) and cid and len(cid) <= MAX_ID else fallback
    tenant_value = raw.get("tenant")
    tenant = tenant_value if isinstance(tenant_value, str) else ""
    sid = raw.get("session_id")
    session_id = sid if isinstance(sid, str) and sid and len(sid) <= MAX_ID else session_key
    kind = raw.get("type")
    if not isinstance(kind, str):
        return Invalid(command_id, session_id, tenant, None, "malformed command: no type")
    try:
        if kind in CONTROL_TYPES:
            return Control(kind, str(_text(raw, "command_id")), str(_text(raw, "tenant")),
                           str(_text(raw, "session_id")),
                           _text(raw, "operator", required=False) or "unknown")
        _text(raw, "command_id")
        _text(raw, "session_id")
        if not isinstance(raw.get("tenant"), str):
            raise ValueError("tenant must be a string")
        for name in ("user_id", "issued_at", "cause_event_id"):
            _text(raw, name, required=False)
        if "preserve_refresh_tokens" in raw and not isinstance(
                raw["preserve_refresh_tokens"], bool):
            raise ValueError("preserve_refresh_tokens must be true or false")
    except ValueError as exc:
        return Invalid(command_id, session_id, tenant, kind[:64], f"malformed command: {exc}")
    if kind not in COMMAND_TYPES:
        return Invalid(command_id, session_id, tenant, kind[:64],
                       f"unknown command type {kind[:64]!r}", unknown_type=True)
    return Command(command_id=command_id, type=kind, tenant=tenant, session_id=session_id,
                   user_id=raw.get("user_id"), issued_at=raw.get("issued_at"),
                   cause_event_id=raw.get("cause_event_id"), fields=raw)


def control_record(action: str, command_id: str, tenant: str, session_id: str,
                   operator: str) -> bytes:
    """The value the operator CLI writes for a release or discard."""
    return orjson.dumps({"type": action, "command_id": command_id, "tenant": tenant,
                         "session_id": session_id, "operator": operator})
