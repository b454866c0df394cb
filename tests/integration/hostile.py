"""A seeded generator of hostile input records, for the fuzz drill on the real worker.

Why a generator and not hypothesis here: the drill runs 10,000 records
through one real worker process on a real broker; the records must be known
in advance (to compute what each must become) and reproducible from a seed.
Kinds: huge fields, deep nesting, invalid UTF-8, impossible timestamps, NaN
and infinities, wrong types everywhere, vendor shapes with garbage, binary
junk, truncated JSON, scalars, empty records, odd but valid values.
"""

from __future__ import annotations

import copy
import random
from collections.abc import Callable, Iterator
from typing import Any

import orjson

UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/120.0 Safari/537.36"
_WRONG: tuple[Any, ...] = (None, True, 0, -1, 1.5, 2**63 - 1, 1e300, "", "x", [], [1, "a"], {},
                          {"a": None})
_BAD_TIMES = ("2026-11-01T00:00:00-23:75", "2026-11-01T00:00:00+99:99", "2026-13-01T00:00:00Z",
              "2026-02-30T00:00:00Z", "0000-01-01T00:00:00Z", "yesterday", "", "NaN",
              "2026-11-01T25:00:00Z", "9999999999999999999")
_IPS = ("89.160.20.112", "216.160.83.56", "2001:218::1", "10.0.0.1", "::ffff:81.2.69.142",
        "999.1.1.1", "1.2.3", "fe80::1%eth0", "", "not-an-ip", "0.0.0.0", "255.255.255.255")


def native(rng: random.Random, n: int) -> dict[str, Any]:
    return {"event_id": f"h-{n}", "type": rng.choice(("login", "interaction", "token_refresh",
                                                      "silent_auth", "logout")),
            "occurred_at": f"2026-11-01T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00.000Z",
            "tenant": rng.choice(("acme", "initech")),
            "session": {"id": f"hs-{rng.randrange(500)}"}, "user": {"id": f"u{rng.randrange(50)}"},
            "request": {"ip": rng.choice(_IPS[:3]), "user_agent": UA}}


def _huge(rng: random.Random, n: int) -> bytes:
    doc = native(rng, n)
    size = rng.randrange(300_000, 1_200_000)
    field = rng.choice(("ua", "event_id", "session", "tenant", "user", "groups", "metadata"))
    if field == "ua":
        doc["request"]["user_agent"] = UA + "x" * size
    elif field == "event_id":
        doc["event_id"] = "e" * size
    elif field == "session":
        doc["session"]["id"] = "s" * size
    elif field == "tenant":
        doc["tenant"] = "t" * size
    elif field == "user":
        doc["user"]["id"] = "u" * size
    elif field == "groups":
        doc["user"]["groups"] = ["g" * 50] * (size // 55)
    else:
        doc["organization"] = {"id": "o", "metadata": {"idle_session_timeout": "9" * size}}
    return orjson.dumps(doc)


def _deep(rng: random.Random, n: int) -> bytes:
    depth = rng.randrange(600, 3000)
    doc = native(rng, n)
    text = orjson.dumps(doc)[:-1] + b',"x":' + b"[" * depth + b"]" * depth + b"}"
    return text


def _bad_utf8(rng: random.Random, n: int) -> bytes:
    raw = orjson.dumps(native(rng, n))
    at = rng.randrange(1, len(raw) - 1)
    return raw[:at] + rng.choice((b"\xff", b"\xc3\x28", b"\xed\xa0\x80", b"\x80\x80")) + raw[at:]


def _bad_time(rng: random.Random, n: int) -> bytes:
    doc = native(rng, n)
    where = rng.choice(("occurred_at", "created_at", "expires_at"))
    if where == "occurred_at":
        doc["occurred_at"] = rng.choice(_BAD_TIMES)
    else:
        doc["session"][where] = rng.choice(_BAD_TIMES)
    return orjson.dumps(doc)


def _nan(rng: random.Random, n: int) -> bytes:
    raw = orjson.dumps(native(rng, n))
    return raw[:-1] + rng.choice((b',"x":NaN}', b',"x":Infinity}', b',"x":-Infinity}',
                                  b',"x":1e999}', b',"x":123456789012345678901234567890}'))


def _wrong_types(rng: random.Random, n: int) -> bytes:
    doc: dict[str, Any] = native(rng, n)
    for _ in range(rng.randrange(1, 4)):
        path = rng.choice((("event_id",), ("type",), ("occurred_at",), ("tenant",), ("session",),
                           ("session", "id"), ("user",), ("user", "id"), ("user", "groups"),
                           ("request",), ("request", "ip"), ("request", "user_agent"),
                           ("request", "asn"), ("connection",), ("organization",)))
        node: Any = doc
        for key in path[:-1]:
            node = node.get(key) if isinstance(node, dict) else None
        if isinstance(node, dict):
            node[path[-1]] = copy.deepcopy(rng.choice(_WRONG))
    return orjson.dumps(doc)


def _vendor(rng: random.Random, n: int) -> bytes:
    kind = rng.randrange(4)
    if kind == 0:  # Auth0 with garbage
        return orjson.dumps({"log_id": f"9{n}", "data": {"type": rng.choice(("s", "ssa", "sertft")),
                                                         "date": rng.choice(_WRONG + _BAD_TIMES),
                                                         "ip": rng.choice(_IPS + _WRONG),
                                                         "details": rng.choice(_WRONG)}})
    if kind == 1:  # Okta with garbage
        return orjson.dumps({"uuid": f"o-{n}", "eventType": "user.session.start",
                             "published": rng.choice(_BAD_TIMES + _WRONG),
                             "authenticationContext": {"externalSessionId": rng.choice(_WRONG)},
                             "client": {"ipAddress": rng.choice(_IPS + _WRONG)},
                             "securityContext": {"asNumber": rng.choice(_WRONG),
                                                 "isProxy": rng.choice(_WRONG)}})
    if kind == 2:  # Keycloak JSON with garbage
        return orjson.dumps({"id": f"k-{n}", "time": rng.choice(_WRONG), "type": "LOGIN",
                             "realmId": "r", "sessionId": rng.choice(_WRONG),
                             "ipAddress": rng.choice(_IPS + _WRONG)})
    return (f"2026-11-01 00:00:00,000 WARN  [org.keycloak.events] type=LOGIN, realmId=r, "
            f"sessionId={rng.choice(('', 'x' * 300, 'null'))}, ipAddress="
            f"{rng.choice(_IPS)}, time={rng.choice(_BAD_TIMES)}").encode()


def _junk(rng: random.Random, n: int) -> bytes:
    kind = rng.randrange(6)
    if kind == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(1, 400)))
    if kind == 1:
        raw = orjson.dumps(native(rng, n))
        return raw[: rng.randrange(1, len(raw))]
    if kind == 2:
        return rng.choice((b"null", b"true", b"42", b'"text"', b"[]", b"{}", b"[1,2,3]"))
    if kind == 3:
        return b""
    if kind == 4:
        return b" \t\r\n "
    return orjson.dumps([native(rng, n * 1000 + i) for i in range(rng.randrange(2, 30))])


def _odd_but_valid(rng: random.Random, n: int) -> bytes:
    doc = native(rng, n)
    doc["session"]["id"] = rng.choice(("s-\u2603-\U0001f600", "s with spaces", "s\x1fsep",
                                       "S" * 256))
    doc["request"]["ip"] = rng.choice(("2001:218::1", "::ffff:89.160.20.112", "10.1.2.3"))
    doc["request"]["asn"] = rng.choice(("AS1221", 0, -5, "as", 2**40, "AS4294967295"))
    return orjson.dumps(doc)


KINDS: tuple[tuple[Callable[[random.Random, int], bytes], float], ...] = (
    (_huge, 0.005), (_deep, 0.05), (_bad_utf8, 0.12), (_bad_time, 0.12), (_nan, 0.06),
    (_wrong_types, 0.25), (_vendor, 0.15), (_junk, 0.12), (_odd_but_valid, 0.125))


def hostile_records(count: int, seed: int = 8) -> Iterator[tuple[bytes | None, bytes]]:
    """(Kafka key, value) of `count` hostile records; keys are None, junk or huge too."""
    rng = random.Random(seed)
    makers = [k for k, _w in KINDS]
    weights = [w for _k, w in KINDS]
    for n in range(count):
        value = rng.choices(makers, weights)[0](rng, n)
        key_kind = rng.randrange(5)
        key = (None if key_kind == 0 else b"" if key_kind == 1
               else bytes(rng.randrange(256) for _ in range(8)) if key_kind == 2
               else f"hs-{rng.randrange(500)}".encode())
        yield key, value


def canary(n: int) -> bytes:
    """A valid login whose organization idle timeout makes exactly one command."""
    return orjson.dumps({
        "event_id": f"canary-{n}", "type": "login", "occurred_at": "2026-11-01T00:00:00.000Z",
        "tenant": "acme", "session": {"id": f"canary-{n}"}, "user": {"id": f"cu{n}"},
        "organization": {"id": "o", "metadata": {"idle_session_timeout": "900000"}},
        "request": {"ip": "89.160.20.112", "asn": "AS29518", "user_agent": UA}})
