"""A cached, refreshed OAUTHBEARER token shared by every Kafka client of a process.

aiokafka asks its `sasl_oauth_token_provider` for a token on every new
connection, and its `AbstractTokenProvider` docs ask providers to reuse a
token and refresh it before it expires. Faust runs its consumer on a thread
with its own event loop while the producers and the admin client run on
the main loop, so the cache is guarded by a thread lock and the fetch runs
in a worker thread: one token serves all loops, and one fetch happens at a
time however many connections open together.

Refresh: at 80% of the token's lifetime (Kafka's Java client default,
`sasl.login.refresh.window.factor`). If a refresh fails while the current
token is still valid, the current one is used (with a warning) and the fetch
is retried a few seconds later: an IdP outage shorter than a token's
lifetime costs nothing.
"""

from __future__ import annotations

import abc
import asyncio
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiokafka.abc import AbstractTokenProvider
from aiokafka.errors import KafkaConnectionError

log = logging.getLogger("sessionwarden.kafka.auth")

REFRESH_FRACTION = 0.8
MIN_VALIDITY = 5.0
"""Seconds a token must still be valid to be handed out."""
RETRY_AFTER_FAILURE = 5.0
"""Seconds between refresh attempts while an older token is still valid."""


class TokenUnavailable(KafkaConnectionError):  # type: ignore[misc]  # aiokafka is untyped
    """No token could be obtained. Its message never contains a secret.

    A `KafkaConnectionError`, so a client that meets it while (re)connecting
    logs it and retries like any failed connection instead of crashing.
    `permanent` marks configuration errors (rejected credentials, no AWS
    credentials) that retrying cannot fix: start-up stops at once on those.
    """

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class Token:
    """A bearer token and its lifetime (epoch seconds)."""

    value: str = field(repr=False)
    obtained_at: float
    expires_at: float

    @property
    def refresh_at(self) -> float:
        return self.obtained_at + REFRESH_FRACTION * (self.expires_at - self.obtained_at)


class CachedTokenProvider(AbstractTokenProvider, abc.ABC):  # type: ignore[misc]
    """aiokafka token provider: `token()` returns a cached token, refreshed in time.

    Subclasses implement the blocking `fetch()`; `describe()` names the
    source in log lines and errors (no secrets).
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._token: Token | None = None
        self._retry_at = 0.0
        self.fetches = 0

    @abc.abstractmethod
    def fetch(self) -> Token:
        """Obtain a new token (blocking); raise `TokenUnavailable` on failure."""

    @abc.abstractmethod
    def describe(self) -> str:
        """Where tokens come from, for log lines and errors."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.describe()}>"

    async def token(self) -> str:
        """The aiokafka entry point: never blocks the event loop."""
        return await asyncio.to_thread(self.token_now)

    def token_now(self) -> str:
        """The current token, fetching a new one when due (thread-safe, blocking)."""
        with self._lock:
            now = self._clock()
            current = self._token
            usable = current is not None and now < current.expires_at - MIN_VALIDITY
            if current is not None and usable and (now < current.refresh_at
                                                   or now < self._retry_at):
                return current.value
            try:
                fresh = self.fetch()
            except TokenUnavailable as exc:
                if current is None or not usable:
                    raise
                self._retry_at = now + RETRY_AFTER_FAILURE
                log.warning("OAuth token refresh failed; using the current token until it "
                            "expires", extra={"source": self.describe(), "error": str(exc),
                                              "expires_in_s": round(current.expires_at - now)})
                return current.value
            self.fetches += 1
            self._token, self._retry_at = fresh, 0.0
            log.info("obtained an OAuth token", extra={
                "source": self.describe(),
                "expires_in_s": round(fresh.expires_at - fresh.obtained_at)})
            return fresh.value
