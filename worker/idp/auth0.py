"""Auth0 Management API v2 client.

References:
* token: `POST https://{domain}/oauth/token`, `grant_type=client_credentials`,
  `audience=https://{domain}/api/v2/` (a Machine-to-Machine application):
  https://auth0.com/docs/secure/tokens/access-tokens/management-api-access-tokens
* `DELETE /api/v2/sessions/{id}` (scope `delete:sessions`): ends the session,
  refresh tokens stay valid -- used when `preserve_refresh_tokens` is true:
  https://auth0.com/docs/api/management/v2/sessions/delete-session
* `POST /api/v2/sessions/{id}/revoke` (scopes `delete:sessions`,
  `delete:refresh_tokens`): ends the session and revokes its refresh tokens;
  202 "Session deletion request accepted":
  https://auth0.com/docs/api/management/v2/sessions/revoke-session
* `GET /api/v2/sessions/{id}` (`read:sessions`): the probe after a crash.
* `PATCH /api/v2/sessions/{id}` can only write `session_metadata`
  (https://auth0.com/docs/api/management/v2/sessions/patch-sessions-by-id):
  expiry and cookie mode can be set only inside a post-login Action, so
  `set_expires_at`, `set_idle_expires_at`, `set_cookie_mode` and
  `require_reauthentication` are reported `unsupported`.
Session endpoints need an Enterprise plan
(https://auth0.com/docs/manage-users/sessions/manage-user-sessions-with-auth0-management-api).
Rate limits answer 429 with `Retry-After`/`X-RateLimit-Reset`; `Retry-After` is honoured.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

import httpx

from worker.idp.base import ApplyResult, Call, Command, IdpError, Outcome
from worker.idp.http import AdminHttp, RetryPolicy, TokenSource, client_credentials


class Auth0Client:
    """Applies commands to one Auth0 tenant."""

    kind = "auth0"
    supported = frozenset({"revoke_session"})

    def __init__(self, domain: str, client_id: str, client_secret: str, *,
                 concurrency: int = 4, timeout: float = 10.0, retry: RetryPolicy | None = None,
                 transport: httpx.AsyncBaseTransport | None = None, **http: Any) -> None:
        host = domain.removeprefix("https://").rstrip("/")
        base = f"https://{host}"
        self.target = f"auth0:{host}"
        form = {"grant_type": "client_credentials", "client_id": client_id,
                "client_secret": client_secret, "audience": f"{base}/api/v2/"}
        self.http = AdminHttp(base, None, concurrency=concurrency, timeout=timeout, retry=retry,
                              transport=transport, **http)
        raw = self.http.client

        async def fetch() -> tuple[str, float]:
            return await client_credentials(raw, f"{base}/oauth/token", form, json_body=True)

        self.http.tokens = TokenSource(fetch)

    async def apply(self, command: Command) -> ApplyResult:
        if command.type not in self.supported:
            return ApplyResult(Outcome.UNSUPPORTED,
                               reason=f"the Auth0 Management API cannot apply {command.type}")
        calls: list[Call] = []
        path = f"/api/v2/sessions/{quote(command.session_id, safe='')}"
        try:
            if command.preserve_refresh_tokens:
                response, attempts = await self.http.request("DELETE", path, calls=calls)
            else:
                response, attempts = await self.http.request("POST", f"{path}/revoke",
                                                             calls=calls)
        except IdpError as exc:
            return ApplyResult(Outcome.FAILED, exc.status, len(calls), str(exc), calls)
        status = response.status_code
        outcome = Outcome.ALREADY_GONE if status == 404 else Outcome.APPLIED
        return ApplyResult(outcome, status, attempts, None, calls)

    async def session_alive(self, command: Command) -> bool | None:
        path = f"/api/v2/sessions/{quote(command.session_id, safe='')}"
        try:
            response, _ = await self.http.request("GET", path, ok=frozenset({200, 404}))
        except IdpError:
            return None
        return response.status_code == 200

    async def aclose(self) -> None:
        await self.http.aclose()
