"""HTTP plumbing shared by the IdP clients: retries, backoff, Retry-After, tokens.

Why one module: every admin API here (Keycloak, Auth0, Okta) answers 429 with
`Retry-After` and can fail with 5xx or a dropped connection, and every one
uses an OAuth 2.0 client-credentials token (RFC 6749 section 4.4) that expires.
The rules are the same, so they are written once:

* retry on 429, 5xx and transport errors (connect, read, timeout), with
  exponential backoff and *full jitter* (a random wait in [0, base * 2**n],
  capped) so that a burst of failing calls does not retry in lock-step;
* a `Retry-After` header (seconds or an HTTP date, RFC 9110 section 10.2.3)
  on 429/503 sets the wait instead, up to `max_retry_after`;
* a 401 refreshes the token once (it may have expired in flight);
* every call holds a slot of the target's concurrency limit.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from worker.idp.base import Call, IdpError

RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry one call."""

    max_attempts: int = 5
    base_delay: float = 0.2
    max_delay: float = 10.0
    max_retry_after: float = 60.0
    """A longer Retry-After is capped (the command is then retried sooner)."""

    def backoff(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(max_delay, base * 2**(attempt-1))]."""
        return rng.uniform(0.0, min(self.max_delay, self.base_delay * (2 ** (attempt - 1))))


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date)."""
    if not value:
        return None
    text = value.strip()
    if text.isdigit():
        return float(text)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


Sleep = Callable[[float], Awaitable[None]]


class TokenSource:
    """A cached OAuth access token from a `fetch` coroutine (client credentials).

    `fetch` returns (token, expires_in seconds); the token is renewed 30 s
    before it expires, or at once after a 401. Concurrent callers share one
    fetch.
    """

    def __init__(self, fetch: Callable[[], Awaitable[tuple[str, float]]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._clock = clock
        self._token: str | None = None
        self._expires = 0.0
        self._lock = asyncio.Lock()
        self.fetches = 0

    async def get(self, *, renew: bool = False) -> str:
        async with self._lock:
            if renew or self._token is None or self._clock() >= self._expires:
                token, expires_in = await self._fetch()
                self.fetches += 1
                self._token = token
                self._expires = self._clock() + max(0.0, expires_in - 30.0)
            return self._token

    def invalidate(self) -> None:
        self._token = None


class AdminHttp:
    """An httpx.AsyncClient for one target with retries and a concurrency limit."""

    def __init__(self, base_url: str, tokens: TokenSource | None, *, concurrency: int = 8,
                 timeout: float = 10.0, retry: RetryPolicy | None = None,
                 rng: random.Random | None = None, sleep: Sleep = asyncio.sleep,
                 transport: httpx.AsyncBaseTransport | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        self.client = httpx.AsyncClient(base_url=base_url, timeout=timeout, transport=transport,
                                        headers=dict(headers or {}),
                                        limits=httpx.Limits(max_connections=concurrency,
                                                            max_keepalive_connections=concurrency))
        self.tokens = tokens
        self.retry = retry or RetryPolicy()
        self.slots = asyncio.Semaphore(concurrency)
        self.rng = rng or random.Random()
        self.sleep = sleep
        self.retries = 0
        """Retries made (all calls): a metric."""
        self.throttled = 0
        """429 answers seen: a metric."""

    async def request(self, method: str, path: str, *, calls: list[Call] | None = None,
                      ok: frozenset[int] = frozenset({200, 201, 202, 204, 404}),
                      **kwargs: Any) -> tuple[httpx.Response, int]:
        """Send with retries until a status in `ok` (or a non-retryable one) comes back.

        Returns (response, attempts). Raises IdpError when every attempt failed
        or the answer is an error that retrying cannot fix (4xx other than 404
        and 429). `calls` collects every exchange for the result record.
        """
        attempt = 0
        renewed = False
        last_status: int | None = None
        last_error = ""
        extra_headers = dict(kwargs.pop("headers", {}) or {})
        params = kwargs.get("params")
        shown = f"{path}?{urlencode(params)}" if params else path  # for `calls`
        while attempt < self.retry.max_attempts:
            attempt += 1
            headers = dict(extra_headers)
            wait: float | None = None
            try:
                if self.tokens is not None:
                    headers["Authorization"] = f"Bearer {await self.tokens.get()}"
            except IdpError as exc:  # the token endpoint failed: retry like the call
                if exc.status is not None and exc.status not in RETRY_STATUSES:
                    raise IdpError(str(exc), exc.status, attempt) from None
                last_status, last_error = exc.status, str(exc)
                if attempt >= self.retry.max_attempts:
                    break
                self.retries += 1
                await self.sleep(self.retry.backoff(attempt, self.rng))
                continue
            try:
                async with self.slots:
                    response = await self.client.request(method, path, headers=headers,
                                                         **kwargs)
            except httpx.TransportError as exc:
                last_status, last_error = None, f"{type(exc).__name__}: {exc}"[:200]
                if calls is not None:
                    calls.append(Call(method, shown, None))
            else:
                last_status = response.status_code
                if calls is not None:
                    calls.append(Call(method, shown, last_status))
                if last_status == 401 and self.tokens is not None and not renewed:
                    renewed = True
                    self.tokens.invalidate()
                    attempt -= 1  # a stale token is not the IdP failing
                    continue
                if last_status in ok:
                    return response, attempt
                if last_status not in RETRY_STATUSES:
                    raise IdpError(f"{method} {path}: HTTP {last_status} "
                                   f"{_brief(response)}", last_status, attempt)
                last_error = f"HTTP {last_status}"
                if last_status == 429:
                    self.throttled += 1
                if last_status in (429, 503):
                    after = retry_after_seconds(response.headers.get("Retry-After"))
                    if after is not None:
                        wait = min(after, self.retry.max_retry_after)
            if attempt >= self.retry.max_attempts:
                break
            self.retries += 1
            await self.sleep(wait if wait is not None else self.retry.backoff(attempt, self.rng))
        raise IdpError(f"{method} {path}: gave up after {attempt} attempts ({last_error})",
                       last_status, attempt)

    async def aclose(self) -> None:
        await self.client.aclose()


def _brief(response: httpx.Response) -> str:
    """The start of an error body (IdP error JSON), never a header or token."""
    return response.text[:160].replace("\n", " ")


async def client_credentials(http: httpx.AsyncClient, url: str, form: Mapping[str, str],
                             *, json_body: bool = False) -> tuple[str, float]:
    """POST a client-credentials token request; return (access_token, expires_in).

    The error raised never contains the request (it holds the secret).
    """
    try:
        if json_body:
            response = await http.post(url, json=dict(form))
        else:
            response = await http.post(url, data=dict(form))
    except httpx.TransportError as exc:
        raise IdpError(f"token endpoint {url} unreachable: {type(exc).__name__}") from None
    if response.status_code != 200:
        raise IdpError(f"token endpoint {url}: HTTP {response.status_code} {_brief(response)}",
                       response.status_code)
    body = response.json()
    token = body.get("access_token") if isinstance(body, dict) else None
    if not isinstance(token, str):
        raise IdpError(f"token endpoint {url}: no access_token in the answer")
    expires = body.get("expires_in", 300)
    return token, float(expires) if isinstance(expires, int | float) else 300.0
