"""Signing the SETs of a decision into `session-signals` records.

A record is a small JSON envelope around the compact JWS, so that a Kafka
consumer can route and de-duplicate without verifying first, and push
delivery can log what it sends:

    {"jti": ..., "event_type": ..., "session_id": ..., "command_id": ...,
     "set": "<header>.<claims>.<signature>"}

The envelope is not signed; receivers trust only the verified `set`. The
JWS header is `{"alg": "RS256", "typ": "secevent+jwt", "kid": ...}`
(explicit typing, RFC 8417 section 2.3 and SSF 1.0), and the claims are
written by orjson in a fixed key order, so with one key the bytes are the
same in replay and in the worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson
from joserfc import jws

from detectors.model import Finding
from worker.settings import DecisionSettings
from worker.signals.caep import Signal, SubjectConfig, signals_for
from worker.signals.keys import ALGORITHM, SigningKey, SigningKeyError, jwks

TYP = "secevent+jwt"


class Signer:
    """Turns decisions into signed `session-signals` records."""

    def __init__(self, key: SigningKey, config: SubjectConfig) -> None:
        self.key = key
        self.config = config
        self._header = {"alg": ALGORITHM, "typ": TYP, "kid": key.kid}

    @classmethod
    def from_settings(cls, settings: DecisionSettings, *, ephemeral_ok: bool) -> Signer | None:
        """The signer the settings ask for, or None when signals are off.

        With a configured key: that key. Without one, replay (`ephemeral_ok`)
        generates a key for the run, while the worker publishes no signals:
        an ephemeral key there would change at every restart and differ
        between workers, and receivers could not verify what a JWKS fetched
        a minute earlier did not list. `signals_enabled=true` without a key
        is a configuration error (SigningKeyError).
        """
        s = settings
        if s.signals_enabled is False:
            return None
        if s.signing_key_file is not None and s.signing_key is not None:
            raise SigningKeyError("set either SESSIONWARDEN_SIGNING_KEY_FILE or "
                                  "SESSIONWARDEN_SIGNING_KEY, not both")
        key: SigningKey | None = None
        if s.signing_key_file is not None:
            key = SigningKey.from_file(s.signing_key_file, s.signing_kid)
        elif s.signing_key is not None:
            key = SigningKey.from_pem(s.signing_key.get_secret_value().encode(),
                                      s.signing_kid, source="key (SESSIONWARDEN_SIGNING_KEY)")
        elif ephemeral_ok:
            key = SigningKey.generate()
        elif s.signals_enabled:
            raise SigningKeyError("session signals need a signing key: set "
                                  "SESSIONWARDEN_SIGNING_KEY_FILE (or SESSIONWARDEN_SIGNING_KEY),"
                                  " or SESSIONWARDEN_SIGNALS_ENABLED=false")
        if key is None:
            return None
        audience = tuple(a.strip() for a in (s.signals_audience or "").split(",") if a.strip())
        return cls(key, SubjectConfig(s.signals_issuer, audience, s.signals_user_issuer))

    def jwks(self) -> dict[str, Any]:
        return jwks([self.key])

    def sign(self, claims: dict[str, Any]) -> str:
        """The compact JWS of the claims (RFC 7515 section 7.1)."""
        return jws.serialize_compact(self._header, orjson.dumps(claims), self.key.key,
                                     algorithms=[ALGORITHM])

    def record(self, signal: Signal) -> dict[str, Any]:
        return {"jti": signal.claims["jti"], "event_type": signal.event_type,
                "session_id": signal.session_id, "command_id": signal.command_id,
                "set": self.sign(signal.claims)}

    def records(self, commands: Sequence[dict[str, Any]], findings: Sequence[Finding], *,
                event_id: str, session_id: str, user_id: str | None, tenant: str | None,
                occurred_at: int, policy_version: str | None) -> list[dict[str, Any]]:
        """The signed records of one decision."""
        return [self.record(s) for s in signals_for(
            self.config, commands, findings, event_id=event_id, session_id=session_id,
            user_id=user_id, tenant=tenant, occurred_at=occurred_at,
            policy_version=policy_version)]
