"""An independent check of our Security Event Tokens: verify, then validate.

Why a second JOSE library: the SETs are signed with joserfc; they are
verified here with jwcrypto, against the JWKS we publish, so a token that
only our own library accepts (a header it tolerates, a key encoding only it
reads) fails the tests. The claims are then validated with JSON Schema
(draft 2020-12) transcribed from the specs, not from our code:

- RFC 8417 section 2.2 and OpenID SSF 1.0 section "Security Event Token
  Profile": `iss`, `iat`, `jti`, `events` required; exactly one event; no
  `sub`, no `exp`; `sub_id` required; explicit `typ` "secevent+jwt".
- RFC 9493 subject identifier formats, and the SSF complex subject
  (`format` "complex" with simple-subject members).
- OpenID CAEP 1.0: `session-revoked` (no event-specific claims; optional
  `initiating_entity`, `reason_admin`, `reason_user`, `event_timestamp`) and
  `risk-level-change` (`principal` and `current_level` required, levels LOW,
  MEDIUM, HIGH).
"""

from __future__ import annotations

import json
from typing import Any

from jsonschema import Draft202012Validator
from jwcrypto import jwk, jws

CAEP = "https://schemas.openid.net/secevent/caep/event-type/"

_LANG_MAP = {  # BCP47 language tag -> message (CAEP "reason_admin" / "reason_user")
    "type": "object", "minProperties": 1,
    "propertyNames": {"pattern": "^[A-Za-z]{2,8}(-[A-Za-z0-9]{1,8})*$"},
    "additionalProperties": {"type": "string"},
}
_OPTIONAL_CLAIMS = {
    "event_timestamp": {"type": "number"},
    "initiating_entity": {"enum": ["admin", "user", "policy", "system"]},
    "reason_admin": _LANG_MAP,
    "reason_user": _LANG_MAP,
}
_LEVEL = {"enum": ["LOW", "MEDIUM", "HIGH"]}

# RFC 9493 section 3.2 formats (members required per format) and SSF additions.
SIMPLE_SUBJECT: dict[str, Any] = {
    "type": "object",
    "required": ["format"],
    "oneOf": [
        {"properties": {"format": {"const": "account"}, "uri": {"type": "string",
                                                               "pattern": "^acct:"}},
         "required": ["uri"]},
        {"properties": {"format": {"const": "email"}, "email": {"type": "string"}},
         "required": ["email"]},
        {"properties": {"format": {"const": "iss_sub"}, "iss": {"type": "string"},
                        "sub": {"type": "string"}}, "required": ["iss", "sub"]},
        {"properties": {"format": {"const": "opaque"}, "id": {"type": "string",
                                                              "minLength": 1}},
         "required": ["id"]},
        {"properties": {"format": {"const": "phone_number"},
                        "phone_number": {"type": "string"}}, "required": ["phone_number"]},
        {"properties": {"format": {"const": "did"}, "url": {"type": "string"}},
         "required": ["url"]},
        {"properties": {"format": {"const": "uri"}, "uri": {"type": "string"}},
         "required": ["uri"]},
    ],
}
COMPLEX_SUBJECT: dict[str, Any] = {
    "type": "object",
    "required": ["format"],
    "properties": {"format": {"const": "complex"}},
    "minProperties": 2,
    "additionalProperties": SIMPLE_SUBJECT,
}
SET_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["iss", "iat", "jti", "events", "sub_id"],
    "properties": {
        "iss": {"type": "string", "pattern": "^https://"},
        "iat": {"type": "integer", "minimum": 0},
        "jti": {"type": "string", "minLength": 1},
        "aud": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
        "txn": {"type": "string", "minLength": 1},
        "sub_id": {"oneOf": [SIMPLE_SUBJECT, COMPLEX_SUBJECT]},
        "events": {"type": "object", "minProperties": 1, "maxProperties": 1},
    },
    "not": {"anyOf": [{"required": ["sub"]}, {"required": ["exp"]}]},
}
EVENT_SCHEMAS: dict[str, dict[str, Any]] = {
    CAEP + "session-revoked": {
        "type": "object",
        "properties": dict(_OPTIONAL_CLAIMS),
    },
    CAEP + "risk-level-change": {
        "type": "object",
        "required": ["principal", "current_level"],
        "properties": {**_OPTIONAL_CLAIMS, "principal": {"type": "string"},
                       "current_level": _LEVEL, "previous_level": _LEVEL,
                       "risk_reason": {"type": "string"}},
    },
}


def verify(token: str, jwks: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Verify a compact JWS with jwcrypto against a JWK Set; (header, claims) or raise."""
    keys = jwk.JWKSet.from_json(json.dumps(jwks))
    signed = jws.JWS()
    signed.deserialize(token)
    header = signed.jose_header
    key = keys.get_key(header["kid"])
    if key is None:
        raise ValueError(f"kid {header['kid']!r} not in the JWKS")
    signed.verify(key, alg="RS256")
    return header, json.loads(signed.payload)


def claim_errors(claims: dict[str, Any]) -> list[str]:
    """Schema violations of a SET's claims and of its one CAEP event."""
    errors = [e.message for e in Draft202012Validator(SET_SCHEMA).iter_errors(claims)]
    for uri, event in (claims.get("events") or {}).items():
        schema = EVENT_SCHEMAS.get(uri)
        if schema is None:
            errors.append(f"unknown event type {uri}")
            continue
        errors += [f"{uri}: {e.message}" for e in Draft202012Validator(schema).iter_errors(event)]
    return errors
