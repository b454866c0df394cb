"""Impossible travel: two requests of one session too far apart for the time between them.

Compared with the session's last located request, not the initial one: a
session that legitimately moved (a train ride) is judged hop by hop. Short
hops are ignored because IP geolocation is only accurate to tens of km.
"""

from __future__ import annotations

from math import asin, cos, radians, sin, sqrt

from detectors.model import Baseline, EnrichedEvent, Finding
from detectors.policy import Policy

EARTH_RADIUS_KM = 6371.0


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle (haversine) distance."""
    dlat, dlon = radians(lat2 - lat1), radians(lon2 - lon1)
    a = sin(dlat / 2) ** 2 + cos(radians(lat1)) * cos(radians(lat2)) * sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_KM * asin(sqrt(a))


def impossible_travel(ev: EnrichedEvent, base: Baseline, policy: Policy) -> Finding | None:
    rule = policy.detector("impossible_travel")
    n = ev.network
    if (rule.action == "off" or n.latitude is None or n.longitude is None
            or base.last_latitude is None or base.last_longitude is None
            or base.last_geo_at is None):
        return None
    km = distance_km(base.last_latitude, base.last_longitude, n.latitude, n.longitude)
    if km < rule.min_distance_km:
        return None
    hours = max(ev.event.occurred_at - base.last_geo_at, 0) / 3_600_000
    speed = km / hours if hours > 0 else float("inf")
    if speed <= rule.max_speed_kmh:
        return None
    return Finding("impossible_travel", rule.action, rule.reason, "high", {
        "from": {"ip": base.last_ip, "lat": base.last_latitude, "long": base.last_longitude},
        "to": {"ip": n.ip, "lat": n.latitude, "long": n.longitude, "city": n.city,
               "country": n.country},
        "distance_km": round(km, 1),
        "elapsed_s": round(hours * 3600, 3),
        "speed_kmh": round(speed, 1) if hours > 0 else None,
    }, rule.preserve_refresh_tokens)
