"""User-supplied token providers for `SESSIONWARDEN_SASL_OAUTH_TOKEN_PROVIDER=module:attribute`.

Why here: the tests load these by name, exactly as a deployment would load
its own provider (`mycompany.kafka:TokenProvider`), in a worker subprocess.
"""

from __future__ import annotations

import os

from aiokafka.abc import AbstractTokenProvider

TOKEN_ENV = "SESSIONWARDEN_TEST_STATIC_TOKEN"


class StaticTokenProvider(AbstractTokenProvider):  # type: ignore[misc]
    """Hands out the token in $SESSIONWARDEN_TEST_STATIC_TOKEN (obtained by the test)."""

    async def token(self) -> str:
        return os.environ[TOKEN_ENV]


def make_provider() -> AbstractTokenProvider:
    """A factory, the other accepted form."""
    return StaticTokenProvider()


INSTANCE = StaticTokenProvider()


class NotAProvider:
    """A class that is not an AbstractTokenProvider (rejected at start)."""
