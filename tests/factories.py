"""Builders for events and enriched events in unit tests of the core."""

from __future__ import annotations

from typing import Any

from detectors.model import Agent, EnrichedEvent, EventType, Network, SessionEvent, SessionInfo
from detectors.timefmt import parse_time

T0 = parse_time("2026-11-27T10:00:00.000Z")
MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR

CHROME_120_MAC = ("Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 "
                  "(KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36")
CHROME_121_MAC = CHROME_120_MAC.replace("Chrome/120", "Chrome/121")
CHROME_100_MAC = CHROME_120_MAC.replace("Chrome/120", "Chrome/100")
FIREFOX_WIN = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:119.0) Gecko/20100101 "
               "Firefox/119.0")
CHROME_120_WIN = CHROME_120_MAC.replace("Macintosh; Intel Mac OS X 10_15_7",
                                        "Windows NT 10.0; Win64; x64")


def agent(raw: str) -> Agent:
    from worker.useragent import parse_agent  # noqa: PLC0415

    return parse_agent(raw)


def event(n: int = 1, *, session: str = "s-1", kind: str = "login", at: int | None = None,
          ip: str = "89.160.20.112", asn: int | None = 29518, ua: str | None = CHROME_120_MAC,
          created_at: int | None = T0, connection_meta: dict[str, Any] | None = None,
          org_meta: dict[str, Any] | None = None, groups: tuple[str, ...] = (),
          event_id: str | None = None, country: str | None = "SE",
          anonymous: tuple[str, ...] = (), connection: str = "Username-Password",
          organization: str | None = "org_1",
          geo: tuple[float, float] | None = None, accuracy_km: int | None = None,
          hosting: bool = False, mobile: bool = False, operator: str | None = None,
          device_token: str | None = None, idp_risk: str | None = None,
          user_id: str | None = "auth0|42",
          authenticated_at: int | None = None) -> EnrichedEvent:
    """An enriched event with sensible defaults; `n` orders events in time."""
    e = SessionEvent(
        event_id=event_id or f"evt-{session}-{n}",
        type=EventType(kind),
        occurred_at=T0 + n * MINUTE if at is None else at,
        session=SessionInfo(id=session, created_at=created_at,
                            authenticated_at=authenticated_at),
        ip=ip,
        tenant="acme",
        user_id=user_id,
        groups=groups,
        client_id="app-1",
        connection=connection,
        connection_metadata=connection_meta or {},
        organization=organization,
        organization_metadata=org_meta or {},
        user_agent=ua,
        device_token=device_token,
        idp_risk=idp_risk,
    )
    net = Network(ip=ip, asn=asn, asn_source="mmdb" if asn else None, country=country,
                  anonymous=anonymous, latitude=geo[0] if geo else None,
                  longitude=geo[1] if geo else None, accuracy_km=accuracy_km,
                  hosting=hosting, mobile=mobile, operator=operator)
    return EnrichedEvent(e, net, agent(ua) if ua else None)
