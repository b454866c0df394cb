"""Okta Management API client (OAuth 2.0 for Okta, a service app).

References:
* service apps get Okta-scoped tokens only with the client-credentials grant
  and `private_key_jwt` client authentication (RFC 7523): the enforcer signs
  a short-lived JWT (iss = sub = client id, aud = the token endpoint) with
  the app's private key:
  https://developer.okta.com/docs/guides/implement-oauth-for-okta-serviceapp/main/
* token: `POST {org}/oauth2/v1/token`, `scope=okta.sessions.manage`;
* revoke: `DELETE /api/v1/sessions/{sessionId}` (204; 404 when unknown),
  scope `okta.sessions.manage`:
  https://developer.okta.com/docs/reference/api/sessions/
* probe: `GET /api/v1/sessions/{sessionId}` (`okta.sessions.read`).

Okta's session API can end a session or *refresh* it to the policy lifetime,
not set a given expiry, so `set_expires_at`, `set_idle_expires_at`,
`set_cookie_mode` and `require_reauthentication` are `unsupported`.
`DELETE /api/v1/users/{id}/sessions?oauthTokens=true` would also revoke the
user's OAuth tokens, but it ends *every* session of the user, so it is not
used for a per-session command: with Okta, `preserve_refresh_tokens=false`
ends the session only (documented in docs/enforcement.md).
Okta rate limits answer 429 with `X-Rate-Limit-Reset`; a `Retry-After`, when
present, is honoured, otherwise the backoff applies.
"""

from __future__ import annotations

import time
import uuid
from typing import Any
from urllib.parse import quote

import httpx

from worker.idp.base import ApplyResult, Call, Command, IdpError, Outcome
from worker.idp.http import AdminHttp, RetryPolicy, TokenSource, client_credentials

SCOPES = "okta.sessions.manage okta.sessions.read"


def client_assertion(client_id: str, token_url: str, private_key_pem: str,
                     key_id: str | None = None, now: float | None = None) -> str:
    """A signed RS256 JWT for `private_key_jwt` (valid 5 minutes, unique jti)."""
    from joserfc import jwt  # noqa: PLC0415
    from joserfc.jwk import RSAKey  # noqa: PLC0415

    key = RSAKey.import_key(private_key_pem)
    issued = int(time.time() if now is None else now)
    header: dict[str, Any] = {"alg": "RS256"}
    if key_id:
        header["kid"] = key_id
    claims = {"iss": client_id, "sub": client_id, "aud": token_url, "iat": issued,
              "exp": issued + 300, "jti": uuid.uuid4().hex}
    return jwt.encode(header, claims, key)


class OktaClient:
    """Applies commands to one Okta org."""

    kind = "okta"
    supported = frozenset({"revoke_session"})

    def __init__(self, org_url: str, client_id: str, private_key_pem: str, *,
                 key_id: str | None = None, concurrency: int = 4, timeout: float = 10.0,
                 retry: RetryPolicy | None = None,
                 transport: httpx.AsyncBaseTransport | None = None, **http: Any) -> None:
        base = org_url.rstrip("/")
        self.target = f"okta:{base}"
        token_url = f"{base}/oauth2/v1/token"
        self.http = AdminHttp(base, None, concurrency=concurrency, timeout=timeout, retry=retry,
                              transport=transport, **http)
        raw = self.http.client

        async def fetch() -> tuple[str, float]:
            form = {"grant_type": "client_credentials", "scope": SCOPES,
                    "client_assertion_type":
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    "client_assertion": client_assertion(client_id, token_url,
                                                         private_key_pem, key_id)}
            return await client_credentials(raw, token_url, form)

        self.http.tokens = TokenSource(fetch)

    async def apply(self, command: Command) -> ApplyResult:
        if command.type not in self.supported:
            return ApplyResult(Outcome.UNSUPPORTED,
                               reason=f"the Okta sessions API cannot apply {command.type}")
        calls: list[Call] = []
        path = f"/api/v1/sessions/{quote(command.session_id, safe='')}"
        try:
            response, attempts = await self.http.request("DELETE", path, calls=calls)
        except IdpError as exc:
            return ApplyResult(Outcome.FAILED, exc.status, len(calls), str(exc), calls)
        status = response.status_code
        outcome = Outcome.ALREADY_GONE if status == 404 else Outcome.APPLIED
        return ApplyResult(outcome, status, attempts, None, calls)

    async def session_alive(self, command: Command) -> bool | None:
        path = f"/api/v1/sessions/{quote(command.session_id, safe='')}"
        try:
            response, _ = await self.http.request("GET", path, ok=frozenset({200, 404}))
        except IdpError:
            return None
        return response.status_code == 200

    async def aclose(self) -> None:
        await self.http.aclose()
