"""The IdP admin-API clients against recorded exchanges (respx).

Auth0 and Okta cannot run here, so their clients are tested against the
requests and answers of their API reference pages
(tests/fixtures/idp_api/exchanges.json names the page of each). The Keycloak
client is also exercised against a real server (tests/integration).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import httpx
import respx
from joserfc import jwt
from joserfc.jwk import RSAKey

from worker.idp.auth0 import Auth0Client
from worker.idp.base import Command, Outcome
from worker.idp.http import AdminHttp, RetryPolicy, TokenSource, retry_after_seconds
from worker.idp.keycloak import KeycloakClient
from worker.idp.okta import OktaClient, client_assertion

EXCHANGES = json.loads((Path(__file__).resolve().parents[1] / "fixtures" / "idp_api" /
                        "exchanges.json").read_text())
FAST = RetryPolicy(max_attempts=4, base_delay=0.0, max_delay=0.0)


def recorded(vendor: str, name: str, sid: str = "s-1") -> httpx.Response:
    r = EXCHANGES[vendor][name]["response"]
    body = json.loads(json.dumps(r.get("json")).replace("{id}", sid)) if "json" in r else None
    if body is not None:
        return httpx.Response(r["status"], json=body, headers=r.get("headers", {}))
    return httpx.Response(r["status"], text=r.get("text", ""), headers=r.get("headers", {}))


def revoke(preserve: bool = False, kind: str = "revoke_session", sid: str = "s-1") -> Command:
    return Command("c-1", kind, "acme", sid, "auth0|42", "2026-11-01T00:00:00.000Z", "e-1",
                   {"preserve_refresh_tokens": preserve})


class Sleeps:
    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


# -- Auth0 -------------------------------------------------------------------

AUTH0 = "https://example.eu.auth0.com"


def auth0(**kw: Any) -> Auth0Client:
    return Auth0Client("example.eu.auth0.com", "cid", "csecret", retry=FAST, **kw)


@respx.mock
async def test_auth0_revoke_uses_revoke_endpoint_with_a_client_credentials_token() -> None:
    token = respx.post(f"{AUTH0}/oauth/token").mock(return_value=recorded("auth0", "token"))
    route = respx.post(f"{AUTH0}/api/v2/sessions/s-1/revoke").mock(
        return_value=recorded("auth0", "revoke_session"))
    client = auth0()
    result = await client.apply(revoke())
    await client.aclose()
    assert (result.outcome, result.http_status, result.attempts) == (Outcome.APPLIED, 202, 1)
    body = json.loads(token.calls[0].request.content)
    assert body == {"grant_type": "client_credentials", "client_id": "cid",
                    "client_secret": "csecret", "audience": f"{AUTH0}/api/v2/"}
    assert route.calls[0].request.headers["Authorization"] == \
        "Bearer eyJhbGciOi.auth0-placeholder"


@respx.mock
async def test_auth0_preserving_refresh_tokens_deletes_the_session_only() -> None:
    respx.post(f"{AUTH0}/oauth/token").mock(return_value=recorded("auth0", "token"))
    route = respx.delete(f"{AUTH0}/api/v2/sessions/s-1").mock(
        return_value=recorded("auth0", "delete_session"))
    client = auth0()
    result = await client.apply(revoke(preserve=True))
    await client.aclose()
    assert result.outcome is Outcome.APPLIED and route.call_count == 1


@respx.mock
async def test_auth0_gone_session_is_already_gone_and_expiry_is_unsupported() -> None:
    respx.post(f"{AUTH0}/oauth/token").mock(return_value=recorded("auth0", "token"))
    respx.post(f"{AUTH0}/api/v2/sessions/s-1/revoke").mock(
        return_value=recorded("auth0", "session_not_found"))
    client = auth0()
    gone = await client.apply(revoke())
    expiry = await client.apply(revoke(kind="set_expires_at"))
    await client.aclose()
    assert (gone.outcome, gone.http_status) == (Outcome.ALREADY_GONE, 404)
    assert expiry.outcome is Outcome.UNSUPPORTED and expiry.attempts == 0


@respx.mock
async def test_auth0_429_waits_retry_after_then_succeeds() -> None:
    respx.post(f"{AUTH0}/oauth/token").mock(return_value=recorded("auth0", "token"))
    route = respx.post(f"{AUTH0}/api/v2/sessions/s-1/revoke").mock(side_effect=[
        recorded("auth0", "rate_limited"), recorded("auth0", "revoke_session")])
    sleeps = Sleeps()
    client = auth0(sleep=sleeps)
    result = await client.apply(revoke())
    await client.aclose()
    assert result.outcome is Outcome.APPLIED and result.attempts == 2
    assert sleeps.waits == [2.0]  # the recorded Retry-After
    assert route.call_count == 2 and client.http.throttled == 1


@respx.mock
async def test_auth0_probe_reads_the_session() -> None:
    respx.post(f"{AUTH0}/oauth/token").mock(return_value=recorded("auth0", "token"))
    respx.get(f"{AUTH0}/api/v2/sessions/s-1").mock(return_value=recorded("auth0", "session"))
    respx.get(f"{AUTH0}/api/v2/sessions/s-2").mock(
        return_value=recorded("auth0", "session_not_found", "s-2"))
    client = auth0()
    assert await client.session_alive(revoke()) is True
    assert await client.session_alive(revoke(sid="s-2")) is False
    await client.aclose()


# -- Okta --------------------------------------------------------------------

OKTA = "https://corp.okta.com"
KEY = RSAKey.generate_key(2048)
PEM = KEY.as_pem(private=True).decode()


def okta(**kw: Any) -> OktaClient:
    return OktaClient(OKTA, "0oa-client", PEM, key_id="k1", retry=FAST, **kw)


@respx.mock
async def test_okta_gets_a_token_with_a_signed_client_assertion_and_revokes() -> None:
    token = respx.post(f"{OKTA}/oauth2/v1/token").mock(return_value=recorded("okta", "token"))
    route = respx.delete(f"{OKTA}/api/v1/sessions/s-1").mock(
        return_value=recorded("okta", "revoke_session"))
    client = okta()
    result = await client.apply(revoke())
    await client.aclose()
    assert (result.outcome, result.http_status) == (Outcome.APPLIED, 204)
    form = dict(httpx.QueryParams(token.calls[0].request.content.decode()))
    assert form["grant_type"] == "client_credentials"
    assert form["client_assertion_type"] == \
        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
    assert "okta.sessions.manage" in form["scope"].split()
    public = RSAKey.import_key(KEY.as_dict(private=False))
    decoded = jwt.decode(form["client_assertion"], public)
    claims = decoded.claims
    assert decoded.header["kid"] == "k1" and decoded.header["alg"] == "RS256"
    assert claims["iss"] == claims["sub"] == "0oa-client"
    assert claims["aud"] == f"{OKTA}/oauth2/v1/token"
    assert 0 < claims["exp"] - claims["iat"] <= 3600
    assert route.calls[0].request.headers["Authorization"] == "Bearer eyJraWQiOi.okta-placeholder"


def test_okta_client_assertions_are_unique() -> None:
    a = client_assertion("c", "https://x/oauth2/v1/token", PEM, now=1000)
    b = client_assertion("c", "https://x/oauth2/v1/token", PEM, now=1000)
    public = RSAKey.import_key(KEY.as_dict(private=False))
    assert jwt.decode(a, public).claims["jti"] != jwt.decode(b, public).claims["jti"]


@respx.mock
async def test_okta_not_found_rate_limit_and_unsupported() -> None:
    respx.post(f"{OKTA}/oauth2/v1/token").mock(return_value=recorded("okta", "token"))
    respx.delete(f"{OKTA}/api/v1/sessions/gone").mock(
        return_value=recorded("okta", "session_not_found", "gone"))
    respx.delete(f"{OKTA}/api/v1/sessions/busy").mock(side_effect=[
        recorded("okta", "rate_limited"), recorded("okta", "revoke_session")])
    sleeps = Sleeps()
    client = okta(sleep=sleeps, rng=random.Random(7))
    gone = await client.apply(revoke(sid="gone"))
    busy = await client.apply(revoke(sid="busy"))
    step_up = await client.apply(revoke(kind="require_reauthentication"))
    await client.aclose()
    assert gone.outcome is Outcome.ALREADY_GONE
    assert busy.outcome is Outcome.APPLIED and busy.attempts == 2
    assert len(sleeps.waits) == 1  # no Retry-After in Okta's answer: jittered backoff
    assert step_up.outcome is Outcome.UNSUPPORTED


# -- Keycloak (unit level; the real server is in tests/integration) ----------

KC = "https://id.example.com"


def keycloak(**kw: Any) -> KeycloakClient:
    return KeycloakClient(KC, "acme", "sessionwarden-enforcer", "kc-secret", retry=FAST, **kw)


def kc_token() -> httpx.Response:
    return httpx.Response(200, json={"access_token": "kc-token", "expires_in": 300,
                                     "token_type": "Bearer"})


@respx.mock
async def test_keycloak_revoke_deletes_online_and_offline_session() -> None:
    token = respx.post(f"{KC}/realms/acme/protocol/openid-connect/token").mock(
        return_value=kc_token())
    offline = respx.delete(f"{KC}/admin/realms/acme/sessions/s-1",
                           params={"isOffline": "true"}).mock(
        return_value=httpx.Response(404, json={"error": "not found"}))
    online = respx.delete(f"{KC}/admin/realms/acme/sessions/s-1").mock(
        return_value=httpx.Response(204))
    client = keycloak()
    result = await client.apply(revoke())
    await client.aclose()
    assert (result.outcome, result.http_status) == (Outcome.APPLIED, 204)
    assert online.call_count == 1 and offline.call_count == 1
    assert sorted((c.path, c.status) for c in result.calls) == [
        ("/admin/realms/acme/sessions/s-1", 204),
        ("/admin/realms/acme/sessions/s-1?isOffline=true", 404)]
    form = dict(httpx.QueryParams(token.calls[0].request.content.decode()))
    assert form == {"grant_type": "client_credentials", "client_id": "sessionwarden-enforcer",
                    "client_secret": "kc-secret"}


@respx.mock
async def test_keycloak_preserve_keeps_offline_tokens_and_404_is_already_gone() -> None:
    respx.post(f"{KC}/realms/acme/protocol/openid-connect/token").mock(return_value=kc_token())
    route = respx.delete(f"{KC}/admin/realms/acme/sessions/s-1").mock(
        return_value=httpx.Response(404, json={"error": "Sesssion not found"}))
    client = keycloak()
    result = await client.apply(revoke(preserve=True))
    await client.aclose()
    assert result.outcome is Outcome.ALREADY_GONE and route.call_count == 1


@respx.mock
async def test_retries_5xx_and_connection_errors_then_fails_with_the_count() -> None:
    respx.post(f"{KC}/realms/acme/protocol/openid-connect/token").mock(return_value=kc_token())
    respx.delete(f"{KC}/admin/realms/acme/sessions/s-1").mock(side_effect=[
        httpx.ConnectError("refused"), httpx.Response(503), httpx.Response(500),
        httpx.Response(502)])
    sleeps = Sleeps()
    client = keycloak(sleep=sleeps)
    result = await client.apply(revoke(preserve=True))
    await client.aclose()
    assert result.outcome is Outcome.FAILED and result.attempts == 4
    assert [c.status for c in result.calls] == [None, 503, 500, 502]
    assert len(sleeps.waits) == 3 and "gave up after 4 attempts" in (result.reason or "")


@respx.mock
async def test_a_401_renews_the_token_once_and_403_is_not_retried() -> None:
    token = respx.post(f"{KC}/realms/acme/protocol/openid-connect/token").mock(
        return_value=kc_token())
    respx.delete(f"{KC}/admin/realms/acme/sessions/s-1").mock(side_effect=[
        httpx.Response(401), httpx.Response(204)])
    respx.delete(f"{KC}/admin/realms/acme/sessions/s-2").mock(
        return_value=httpx.Response(403, json={"error": "HTTP 403 Forbidden"}))
    client = keycloak()
    renewed = await client.apply(revoke(preserve=True))
    forbidden = await client.apply(revoke(preserve=True, sid="s-2"))
    await client.aclose()
    assert renewed.outcome is Outcome.APPLIED and token.call_count == 2
    assert forbidden.outcome is Outcome.FAILED and forbidden.http_status == 403
    assert forbidden.attempts == 1


@respx.mock
async def test_token_errors_never_contain_the_secret() -> None:
    respx.post(f"{KC}/realms/acme/protocol/openid-connect/token").mock(
        return_value=httpx.Response(401, json={"error": "unauthorized_client"}))
    client = keycloak()
    result = await client.apply(revoke(preserve=True))
    await client.aclose()
    assert result.outcome is Outcome.FAILED and "kc-secret" not in (result.reason or "")
    assert "unauthorized_client" in (result.reason or "")


def test_retry_after_parses_seconds_and_http_dates() -> None:
    assert retry_after_seconds("7") == 7.0
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:10 GMT", now=1445412480.0) == 10.0
    assert retry_after_seconds("soon") is None and retry_after_seconds(None) is None


def test_backoff_is_full_jitter_and_capped() -> None:
    policy = RetryPolicy(base_delay=1.0, max_delay=5.0)
    rng = random.Random(1)
    waits = [policy.backoff(n, rng) for n in range(1, 10) for _ in range(50)]
    assert all(0.0 <= w <= 5.0 for w in waits)
    assert max(policy.backoff(1, rng) for _ in range(200)) <= 1.0
    assert len({round(w, 6) for w in waits}) > 100  # jittered, not lock-step


async def test_concurrency_limit_is_held_per_target() -> None:
    active = 0
    peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal active, peak
        import asyncio  # noqa: PLC0415

        active += 1
        peak = max(peak, active)
        await asyncio.sleep(0.01)
        active -= 1
        return httpx.Response(204)

    http = AdminHttp("https://x", None, concurrency=3, transport=httpx.MockTransport(handler))
    import asyncio  # noqa: PLC0415

    await asyncio.gather(*(http.request("DELETE", f"/s/{i}") for i in range(20)))
    await http.aclose()
    assert peak == 3


async def test_token_source_caches_until_expiry() -> None:
    now = [0.0]
    fetched: list[int] = []

    async def fetch() -> tuple[str, float]:
        fetched.append(1)
        return f"t{len(fetched)}", 300.0

    tokens = TokenSource(fetch, clock=lambda: now[0])
    assert await tokens.get() == "t1" and await tokens.get() == "t1"
    now[0] = 269.0
    assert await tokens.get() == "t1"
    now[0] = 271.0  # renewed 30 s before expiry
    assert await tokens.get() == "t2"


@respx.mock
async def test_keycloak_offline_delete_failure_does_not_undo_a_revoke() -> None:
    respx.post(f"{KC}/realms/acme/protocol/openid-connect/token").mock(return_value=kc_token())
    respx.delete(f"{KC}/admin/realms/acme/sessions/s-1", params={"isOffline": "true"}).mock(
        return_value=httpx.Response(500))
    respx.delete(f"{KC}/admin/realms/acme/sessions/s-1").mock(return_value=httpx.Response(204))
    client = keycloak(sleep=Sleeps())
    result = await client.apply(revoke())
    await client.aclose()
    assert (result.outcome, result.http_status, result.attempts) == (Outcome.APPLIED, 204, 5)
    assert (result.reason or "").startswith("offline session not deleted")
