"""Domain model of the decision core.

Plain slotted dataclasses, not framework records: the core must stay free of
Kafka/Faust so that replay and the live worker share one code path. Times are
integer epoch milliseconds (UTC); "now" is always the event's own time.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class EventType(StrEnum):
    """Native session activity types (DESIGN.md)."""

    LOGIN = "login"
    SILENT_AUTH = "silent_auth"
    TOKEN_REFRESH = "token_refresh"
    INTERACTION = "interaction"
    LOGOUT = "logout"


EVENT_TYPES: frozenset[str] = frozenset(t.value for t in EventType)
EVENT_TYPE_BY_NAME: dict[str, EventType] = {t.value: t for t in EventType}


@dataclass(slots=True)
class SessionInfo:
    """What the IdP told us about the session itself (all optional but the id)."""

    id: str
    created_at: int | None = None
    authenticated_at: int | None = None
    expires_at: int | None = None
    idle_expires_at: int | None = None


@dataclass(slots=True)
class SessionEvent:
    """One normalized piece of session activity, whatever IdP it came from."""

    event_id: str
    type: EventType
    occurred_at: int
    session: SessionInfo
    ip: str
    tenant: str = ""
    user_id: str | None = None
    groups: tuple[str, ...] = ()
    client_id: str | None = None
    connection: str | None = None
    connection_metadata: dict[str, Any] = field(default_factory=dict)
    organization: str | None = None
    organization_metadata: dict[str, Any] = field(default_factory=dict)
    user_agent: str | None = None
    asn: int | None = None
    """ASN as supplied by the IdP (e.g. Okta's securityContext.asNumber)."""
    source: str = "native"
    """Input format the event was normalized from (native, auth0, okta, keycloak)."""
    truncated: tuple[str, ...] = ()
    """Descriptive fields cut to their size limit at decode time (e.g. user_agent)."""


@dataclass(slots=True, frozen=True)
class Network:
    """What enrichment learned about an IP address."""

    ip: str
    asn: int | None = None
    as_org: str | None = None
    asn_source: str | None = None
    """Where the ASN came from: idp, mmdb or pyasn (None when unknown)."""
    country: str | None = None
    city: str | None = None
    latitude: float | None = None
    longitude: float | None = None
    private: bool = False
    """Private, loopback, link-local or reserved: flagged, never looked up."""
    anonymous: tuple[str, ...] = ()
    """Anonymizer flags from an Anonymous-IP database (vpn, tor_exit_node, ...)."""


@dataclass(slots=True, frozen=True)
class Agent:
    """A parsed user agent; built from a raw header or an IdP summary string."""

    raw: str
    family: str
    major: int | None = None
    minor: int | None = None
    patch: int | None = None
    os_family: str = "Other"
    os_version: str | None = None
    device: str | None = None

    @property
    def version(self) -> tuple[int, int, int]:
        return (self.major or 0, self.minor or 0, self.patch or 0)

    @property
    def known(self) -> bool:
        return self.family != "Other"


@dataclass(slots=True)
class EnrichedEvent:
    """A session event plus network and user-agent facts, ready for the engine."""

    event: SessionEvent
    network: Network
    agent: Agent | None = None


@dataclass(slots=True)
class Baseline:
    """The device baseline of one session, as the engine last left it.

    The first event seen for a session sets the initial values, also when it
    is not a login (sessions already alive when the stream starts).
    """

    session_id: str
    tenant: str
    user_id: str | None
    initial_ip: str
    initial_asn: int | None
    initial_user_agent: str | None
    initial_country: str | None
    initial_city: str | None
    initial_latitude: float | None
    initial_longitude: float | None
    last_ip: str
    last_asn: int | None
    last_user_agent: str | None
    initial_agent_family: str | None
    initial_os_family: str | None
    last_agent_version: tuple[int, int, int] | None
    last_latitude: float | None
    last_longitude: float | None
    last_geo_at: int | None
    """Time of the last event with a location (for impossible travel)."""
    created_at: int
    authenticated_at: int | None
    last_interacted_at: int
    first_event_type: str
    expires_at: int | None = None
    idle_expires_at: int | None = None
    cookie_mode: str | None = None
    connection_timeout_ms: int | None = None
    """Last seen connection session_timeout: IdP logs rarely repeat the metadata."""
    idle_timeout_ms: int | None = None
    """Last seen organization idle_session_timeout, re-applied on each interaction."""
    revoked: bool = False
    revoked_at: int | None = None
    logged_out: bool = False
    events_seen: int = 0
    recent_event_ids: list[str] = field(default_factory=list)
    position: tuple[str, int, int, int] | None = None
    """Worker bookkeeping: (topic, partition, offset, index) of the last input event
    taken in, so a Kafka re-delivery is recognised however long it is. Never set
    by the engine, never set in replay."""


@dataclass(slots=True, frozen=True)
class Finding:
    """One detector's verdict on one event, with the evidence behind it."""

    detector: str
    action: str
    """revoke or alert (findings of detectors set to off are never made)."""
    reason: str
    severity: str
    evidence: dict[str, Any]
    preserve_refresh_tokens: bool = False
    kind: str = ""
    """Detector-specific sub-kind, e.g. ua_drift's device_change or downgrade."""


@dataclass(slots=True)
class Decision:
    """Everything one event caused: output records and the baseline to store."""

    baseline: Baseline
    commands: list[dict[str, Any]] = field(default_factory=list)
    audit: list[dict[str, Any]] = field(default_factory=list)
    alerts: list[dict[str, Any]] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    duplicate: bool = False
    suppressed: str | None = None
    """Why no command could be issued (e.g. the session is already revoked)."""
