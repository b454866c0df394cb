"""Every aiokafka internal that sessionwarden touches, in one place.

Like `faust_compat`, for the same reason: these are not public API, so each
touch point is small, idempotent, and has its own test in
`tests/unit/test_aiokafka_compat.py` (and the secured-broker tests exercise
both end to end). Both are installed by `worker.kafka.client` before any
client is built.

1. `aiokafka.conn.OAuthAuthenticator.step` (aiokafka 0.12-0.14) treats any
   server answer to the OAUTHBEARER initial response as success. A broker
   that rejects the token answers with an error challenge
   (`{"status":"invalid_token"}`, RFC 7628 section 3.2.2) and waits for the
   client's `%x01` before failing the exchange; aiokafka instead sends its
   next request on the half-authenticated connection, gets an empty
   metadata answer, and then retries "node None not ready" forever. The
   patched step answers the challenge with `%x01`, so the broker fails the
   exchange and the client raises `SaslAuthenticationFailed` naming the
   status.
2. The `aiokafka.conn` DEBUG log line of every request (`Request to h:p n:
   <struct>`) prints the first 100 bytes of a `SaslAuthenticateRequest`:
   the whole SASL/PLAIN password (an Event Hubs connection string, a
   Confluent API secret) or most of a bearer token. A filter on that logger
   replaces the struct with `SaslAuthenticateRequest(<redacted>)`.
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger("sessionwarden.kafka")

_PATCHED_FLAG = "_sessionwarden_error_challenge_fix"
REDACTED = "SaslAuthenticateRequest(<redacted>)"


def install() -> None:
    """Apply both fixes (idempotent; cheap enough to call per client build)."""
    fix_oauthbearer_error_challenge()
    redact_sasl_in_debug_logs()


def fix_oauthbearer_error_challenge() -> bool:
    """Patch `OAuthAuthenticator.step` (touch point 1); False if aiokafka changed shape."""
    from aiokafka import conn  # noqa: PLC0415

    authenticator: Any = getattr(conn, "OAuthAuthenticator", None)
    if authenticator is None or not callable(getattr(authenticator, "step", None)):
        log.warning("aiokafka has no OAuthAuthenticator.step: OAUTHBEARER error challenges "
                    "are not handled (see worker/kafka/aiokafka_compat.py)")
        return False
    if getattr(authenticator, _PATCHED_FLAG, False):
        return True
    original = authenticator.step

    async def step(self: Any, payload: bytes | None) -> tuple[bytes, bool] | None:
        if getattr(self, "_token_sent", False) and payload:
            if getattr(self, "_sessionwarden_challenge_answered", False):
                return None
            # RFC 7628 3.2.2: the server's error; answer %x01, the broker then fails.
            self._sessionwarden_challenge_answered = True
            return b"\x01", True
        result: tuple[bytes, bool] | None = await original(self, payload)
        return result

    authenticator.step = step
    setattr(authenticator, _PATCHED_FLAG, True)
    return True


class RedactSaslAuthenticate(logging.Filter):
    """Replace SaslAuthenticate request structs in log arguments (touch point 2)."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and any(_is_sasl_authenticate(a) for a in args):
            record.args = tuple(REDACTED if _is_sasl_authenticate(a) else a for a in args)
        return True


def _is_sasl_authenticate(value: object) -> bool:
    return type(value).__name__.startswith("SaslAuthenticateRequest")


def redact_sasl_in_debug_logs() -> None:
    """Attach `RedactSaslAuthenticate` to the `aiokafka.conn` logger once."""
    logger = logging.getLogger("aiokafka.conn")
    if not any(isinstance(f, RedactSaslAuthenticate) for f in logger.filters):
        logger.addFilter(RedactSaslAuthenticate())
