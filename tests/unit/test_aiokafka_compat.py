"""One test per aiokafka internal touched by `worker.kafka.aiokafka_compat`.

Why: these are not public aiokafka API. Each test drives the real aiokafka
class or logger, so an aiokafka upgrade that moves one fails here, by name.
(The secured-broker tests show both fixes against a real broker.)
"""

from __future__ import annotations

import logging

import pytest
from aiokafka.abc import AbstractTokenProvider
from aiokafka.conn import OAuthAuthenticator
from aiokafka.protocol.admin import SaslAuthenticateRequest_v1

from worker.kafka.aiokafka_compat import (
    REDACTED,
    fix_oauthbearer_error_challenge,
    install,
    redact_sasl_in_debug_logs,
)


class Provider(AbstractTokenProvider):  # type: ignore[misc]
    async def token(self) -> str:
        return "tok.en.value"

    def extensions(self) -> dict[str, str]:
        return {"logicalCluster": "lkc-1"}


async def test_oauthbearer_error_challenge_is_answered_so_the_broker_fails_the_login() -> None:
    assert fix_oauthbearer_error_challenge()
    assert fix_oauthbearer_error_challenge()  # idempotent
    auth = OAuthAuthenticator(sasl_oauth_token_provider=Provider())
    first = await auth.step(None)
    assert first == (b"n,,\x01auth=Bearer tok.en.value\x01logicalCluster=lkc-1\x01\x01", True)
    # RFC 7628 3.2.2: the broker's error challenge is answered with %x01 ...
    assert await auth.step(b'{"status":"invalid_token"}') == (b"\x01", True)
    assert await auth.step(b"") is None  # ... once


async def test_an_accepted_token_ends_the_exchange() -> None:
    install()
    auth = OAuthAuthenticator(sasl_oauth_token_provider=Provider())
    await auth.step(None)
    assert await auth.step(b"") is None


def test_sasl_authenticate_requests_are_redacted_in_aiokafka_debug_logs(
        caplog: pytest.LogCaptureFixture) -> None:
    redact_sasl_in_debug_logs()
    redact_sasl_in_debug_logs()  # idempotent: one filter
    logger = logging.getLogger("aiokafka.conn")
    assert sum(type(f).__name__ == "RedactSaslAuthenticate" for f in logger.filters) == 1
    request = SaslAuthenticateRequest_v1(b"\x00user\x00the-plain-password")
    assert "the-plain-password" in repr(request)  # what aiokafka would log
    caplog.set_level(logging.DEBUG, logger="aiokafka.conn")
    logger.debug("Request to %s:%d %d: %s", "127.0.0.1", 9093, 7, request)
    logger.debug("Request to %s:%d %d: %s", "127.0.0.1", 9093, 8, "MetadataRequest_v1()")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [f"Request to 127.0.0.1:9093 7: {REDACTED}",
                        "Request to 127.0.0.1:9093 8: MetadataRequest_v1()"]
