"""Size limits of every normalized field, enforced once for all input formats.

Why: one valid-looking event with a 1 MB session id or a 400 KB user agent
used to produce output records larger than their topics accept, so the
worker crash-looped and its partition stalled for good. Bounding every field
at decode time bounds every record made from it (commands, audit, alerts,
signals, the stored baseline), whatever the IdP sent.

Per field, the choice follows what the field is for:
- identifiers and policy-matching values (event id, session id, tenant, user
  id, client, connection, organization, groups) must stay exact: an
  oversized one makes the event a dead letter with a reason;
- descriptive text (the user agent) is truncated and the event is flagged
  (`SessionEvent.truncated`), so the session is still protected;
- metadata objects keep only the keys the engine reads.

The table is documented in docs/idp-formats.md ("Field limits").
"""

from __future__ import annotations

from typing import Any

from detectors.model import SessionEvent
from worker.formats.base import Invalid

MAX_ID = 256
"""event_id, session id, user id, client id, connection, organization (characters)."""
MAX_TENANT = 128
MAX_GROUPS = 128
MAX_GROUP = 256
MAX_USER_AGENT = 1024
"""Longer user agents are cut to this length (real ones stay well under 600)."""
MAX_METADATA_VALUE = 32
METADATA_KEYS = ("session_timeout", "idle_session_timeout")
"""The only connection/organization metadata the engine reads (the seed's keys)."""

_ID_FIELDS = (("event_id", "event_id"), ("user_id", "user.id"), ("client_id", "client_id"),
              ("connection", "connection"), ("organization", "organization"))


def _too_long(name: str, value: str, limit: int, source: str) -> Invalid:
    return Invalid(f"{name} too long: {len(value):,} characters (limit {limit:,})", source)


def _metadata(meta: dict[str, Any]) -> dict[str, Any]:
    if not meta:
        return meta
    kept = {}
    for key in METADATA_KEYS:
        value = meta.get(key)
        if value is not None and (not isinstance(value, str) or len(value) <= MAX_METADATA_VALUE):
            kept[key] = value
    return kept


def enforce_limits(event: SessionEvent) -> SessionEvent | Invalid:
    """The event within limits, or an Invalid naming the first oversized identifier."""
    src = event.source
    if len(event.session.id) > MAX_ID:
        return _too_long("session.id", event.session.id, MAX_ID, src)
    if len(event.tenant) > MAX_TENANT:
        return _too_long("tenant", event.tenant, MAX_TENANT, src)
    for attr, name in _ID_FIELDS:
        value = getattr(event, attr)
        if value is not None and len(value) > MAX_ID:
            return _too_long(name, value, MAX_ID, src)
    if event.groups:
        if len(event.groups) > MAX_GROUPS:
            return Invalid(f"user.groups has {len(event.groups):,} entries (limit {MAX_GROUPS})",
                           src)
        for group in event.groups:
            if len(group) > MAX_GROUP:
                return _too_long("user.groups entry", group, MAX_GROUP, src)
    ua = event.user_agent
    if ua is not None and len(ua) > MAX_USER_AGENT:
        event.user_agent = ua[:MAX_USER_AGENT]
        event.truncated = (*event.truncated, "user_agent")
    event.connection_metadata = _metadata(event.connection_metadata)
    event.organization_metadata = _metadata(event.organization_metadata)
    return event
