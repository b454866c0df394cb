"""Impossible travel: two requests of one session too far apart for the time between them.

Compared with the session's last *trusted* location: the last request it
accepted from a network that is not an anonymizer or a hosting network (a
VPN exit's location says where the VPN is, not the user, so a VPN hop must
not become the session's "last place"). Travel *to* such a network is still
judged. Geolocation is uncertain: each location's accuracy radius (MaxMind's
`accuracy_radius`) is taken off the distance, so only the distance the user
must at least have covered counts, and a flight -- at most `max_speed_kmh`
(1,000 km/h) over the real great-circle distance -- is never impossible.
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
    return 2 * EARTH_RADIUS_KM * asin(sqrt(min(a, 1.0)))


def trusted_location(ev: EnrichedEvent) -> bool:
    """Whether this request's location may serve as the session's last place."""
    n = ev.network
    return n.latitude is not None and n.longitude is not None and not n.anonymous \
        and not n.hosting


def impossible_travel(ev: EnrichedEvent, base: Baseline, policy: Policy) -> Finding | None:
    rule = policy.detector("impossible_travel")
    n = ev.network
    if (rule.action == "off" or n.latitude is None or n.longitude is None
            or base.last_latitude is None or base.last_longitude is None
            or base.last_geo_at is None):
        return None
    km = distance_km(base.last_latitude, base.last_longitude, n.latitude, n.longitude)
    uncertainty = (base.last_accuracy_km or 0) + (n.accuracy_km or 0)
    at_least = max(km - uncertainty, 0.0)
    if at_least < rule.min_distance_km:
        return None
    hours = max(ev.event.occurred_at - base.last_geo_at, 0) / 3_600_000
    speed = at_least / hours if hours > 0 else float("inf")
    if speed <= rule.max_speed_kmh:
        return None
    return Finding("impossible_travel", rule.action, rule.reason, "high", {
        "from": {"ip": base.last_ip_located, "lat": base.last_latitude,
                 "long": base.last_longitude, "accuracy_km": base.last_accuracy_km},
        "to": {"ip": n.ip, "lat": n.latitude, "long": n.longitude, "city": n.city,
               "country": n.country, "accuracy_km": n.accuracy_km},
        "distance_km": round(km, 1),
        "min_distance_km": round(at_least, 1),
        "elapsed_s": round(hours * 3600, 3),
        "speed_kmh": round(speed, 1) if hours > 0 else None,
    }, rule.preserve_refresh_tokens)


def remember_location(base: Baseline, ev: EnrichedEvent) -> None:
    """An accepted request from a trusted network becomes the session's last place."""
    if trusted_location(ev):
        n = ev.network
        base.last_latitude, base.last_longitude = n.latitude, n.longitude
        base.last_accuracy_km = n.accuracy_km
        base.last_geo_at = ev.event.occurred_at
        base.last_ip_located = n.ip
