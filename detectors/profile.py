"""Per-user profiles: what a user's sessions have used, bounded and decaying.

Why: a session-binding rule that only knows the session's first network
revokes every phone that leaves Wi-Fi. What Entra ID Protection calls
"unfamiliar sign-in properties" needs the *user's* history: a network, a
country or a browser this user has used in earlier sessions is not
evidence of a stolen cookie. The profile remembers, per kind, when each
value was first and last seen and in how many sessions, and forgets what
has not been seen for `ttl` (by event time: replay and the worker agree).

Pure functions on `UserProfile`; the engine decides when to learn (only
from requests it did not act against, so an attacker's network is never
learned).
"""

from __future__ import annotations

import hashlib
import ipaddress
from functools import lru_cache

from detectors.model import EnrichedEvent, Seen, UserProfile
from detectors.policy import ProfilePolicy

DAY_MS = 86_400_000


@lru_cache(maxsize=8192)
def session_tag(session_id: str) -> int:
    """A 32-bit tag of a session id: counts sessions, not events, in a profile entry."""
    return int.from_bytes(hashlib.blake2b(session_id.encode(), digest_size=4).digest(), "big")


@lru_cache(maxsize=65536)
def prefix_of(ip: str) -> str:
    """The address's network: its IPv4 /24 or IPv6 /64 (the unit an ISP hands out)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        addr = addr.ipv4_mapped
    bits = 24 if addr.version == 4 else 64
    return str(ipaddress.ip_network(f"{addr}/{bits}", strict=False))


def network_keys(ev: EnrichedEvent) -> tuple[str, ...]:
    """The keys a request's network is known by: `AS<n>`, `P:<prefix>`, `OP:<operator>`."""
    n = ev.network
    keys = [f"P:{prefix_of(n.ip)}"]
    if n.asn is not None:
        keys.insert(0, f"AS{n.asn}")
    if n.operator:
        keys.append(f"OP:{n.operator}")
    return tuple(keys)


def _kinds(profile: UserProfile) -> tuple[dict[str, Seen], ...]:
    return (profile.networks, profile.prefixes, profile.countries, profile.browsers,
            profile.systems)


def _bounds(policy: ProfilePolicy) -> tuple[int, ...]:
    return (policy.max_networks, policy.max_prefixes, policy.max_countries, policy.max_agents,
            policy.max_agents)


def forget_old(profile: UserProfile, now: int, policy: ProfilePolicy) -> None:
    """Drop every entry not seen within the ttl, by event time."""
    horizon = now - policy.ttl_ms
    for entries in _kinds(profile):
        stale = [k for k, seen in entries.items() if seen.last < horizon]
        for key in stale:
            del entries[key]


def _note(entries: dict[str, Seen], key: str | None, now: int, tag: int, bound: int) -> None:
    if not key:
        return
    seen = entries.get(key)
    if seen is None:
        if len(entries) >= bound:
            # The least used, then the least recently used, goes first.
            victim = min(entries, key=lambda k: (entries[k].sessions, entries[k].last, k))
            del entries[victim]
        entries[key] = Seen(now, now, 1, tag)
        return
    seen.last = max(seen.last, now)
    seen.first = min(seen.first, now)
    if seen.session != tag:
        seen.sessions += 1
        seen.session = tag


def learn(profile: UserProfile, ev: EnrichedEvent, tag: int, policy: ProfilePolicy) -> None:
    """Remember the request's network, country and device in the user's profile."""
    now = ev.event.occurred_at
    forget_old(profile, now, policy)
    n, a = ev.network, ev.agent
    networks, prefixes, countries, browsers, systems = _kinds(profile)
    b_net, b_pre, b_cty, b_brw, b_sys = _bounds(policy)
    if n.asn is not None:
        _note(networks, f"AS{n.asn}", now, tag, b_net)
    _note(prefixes, prefix_of(n.ip), now, tag, b_pre)
    _note(countries, n.country, now, tag, b_cty)
    if a is not None and a.known:
        _note(browsers, a.family, now, tag, b_brw)
        _note(systems, a.os_family, now, tag, b_sys)
    profile.updated_at = max(profile.updated_at, now)


def known(entries: dict[str, Seen], key: str | None, tag: int, now: int,
          policy: ProfilePolicy) -> Seen | None:
    """The entry for key if other sessions of the user used it recently enough, else None.

    Sessions other than the current one count: a network is familiar because
    the user was there before, not because this very session went there.
    """
    if not key:
        return None
    seen = entries.get(key)
    if seen is None or seen.last < now - policy.ttl_ms:
        return None
    others = seen.sessions - (1 if seen.session == tag else 0)
    return seen if others >= policy.min_sessions else None


def describe(what: str, seen: Seen | None, now: int) -> str:
    """Evidence in words: 'AS21928 first seen for this user 41 days ago, 12 sessions'."""
    if seen is None:
        return f"{what} never seen for this user"
    days = max(now - seen.first, 0) // DAY_MS
    ago = "today" if days == 0 else "1 day ago" if days == 1 else f"{days} days ago"
    count = "1 session" if seen.sessions == 1 else f"{seen.sessions} sessions"
    return f"{what} first seen for this user {ago}, {count}"


def size(profile: UserProfile) -> int:
    """How many entries the profile holds (the bench reports it)."""
    return sum(len(entries) for entries in _kinds(profile))

