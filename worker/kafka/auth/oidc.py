"""`oidc`: OAuth 2.0 client-credentials tokens for SASL/OAUTHBEARER.

The grant of RFC 6749 section 4.4 (https://www.rfc-editor.org/rfc/rfc6749#section-4.4):
POST `grant_type=client_credentials` (and `scope`) to the token endpoint,
authenticated as the client. `client_secret_basic` (section 2.3.1, the
default, what Kafka's Java `OAuthBearerLoginCallbackHandler` sends) puts the
form-urlencoded id and secret in an HTTP Basic header; `client_secret_post`
puts them in the body (Microsoft Entra ID's documented form). The answer
(section 5.1) carries `access_token`, `token_type` (Bearer) and usually
`expires_in`; an error (section 5.2) carries `error` and `error_description`,
which are quoted in our message. This is what Confluent Cloud OAuth and
Azure Event Hubs with Entra ID expect; Confluent Cloud also needs SASL
extensions (`logicalCluster`, `identityPoolId`), sent in the initial client
response (RFC 7628 section 3.1) through `extensions()`.

The client secret stays a `SecretStr` until the request is built; messages
name the endpoint, the client id and the IdP's error, never the secret or
the token. A plain-http endpoint is refused unless it is on loopback.
"""

from __future__ import annotations

import base64
import ipaddress
import time
import urllib.parse
from collections.abc import Callable
from typing import Any

import httpx
import orjson
from pydantic import SecretStr

from worker.kafka.auth.config import KafkaSecurityError, env
from worker.kafka.auth.tokens import CachedTokenProvider, Token, TokenUnavailable

DEFAULT_LIFETIME = 300.0
"""Seconds a token is assumed valid when neither `expires_in` nor a JWT `exp` says."""
_PERMANENT_ERRORS = frozenset({"invalid_client", "invalid_grant", "unauthorized_client",
                               "unsupported_grant_type", "invalid_scope", "invalid_request"})


def display_url(url: str) -> str:
    """scheme://host[:port]/path: no user info, query or fragment in messages."""
    parts = urllib.parse.urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _is_loopback(host: str | None) -> bool:
    if host in (None, ""):
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_token_url(url: str) -> str:
    """https, or http to a loopback address (tests, sidecars): the secret is sent there."""
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return url
    if parts.scheme == "http" and _is_loopback(parts.hostname):
        return url
    raise KafkaSecurityError(
        f"{env('sasl_oauth_token_url')}={display_url(url)} must be an https:// URL "
        "(http:// only on loopback): the client secret is sent to it")


def jwt_expiry(token: str) -> float | None:
    """The `exp` claim of a JWT access token (unverified: only to schedule refresh)."""
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        payload = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = orjson.loads(base64.urlsafe_b64decode(payload))
        exp = claims.get("exp") if isinstance(claims, dict) else None
    except (ValueError, orjson.JSONDecodeError):
        return None
    return float(exp) if isinstance(exp, int | float) and not isinstance(exp, bool) else None


class ClientCredentialsTokenProvider(CachedTokenProvider):
    """Tokens from an OAuth 2.0 token endpoint with the client-credentials grant."""

    def __init__(self, token_url: str, client_id: str, client_secret: SecretStr, *,
                 scope: str | None = None, client_auth: str = "basic",
                 extensions: dict[str, str] | None = None, timeout: float = 10.0,
                 transport: httpx.BaseTransport | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock=clock)
        self.token_url = check_token_url(token_url)
        self.client_id = client_id
        self._secret = client_secret
        self.scope = scope
        self.client_auth = client_auth
        self._extensions = dict(extensions or {})
        self.timeout = timeout
        self._transport = transport

    def describe(self) -> str:
        return f"oidc {display_url(self.token_url)} client_id={self.client_id}"

    def extensions(self) -> dict[str, str]:
        """SASL extensions for the initial client response (aiokafka calls this)."""
        return dict(self._extensions)

    def _scrub(self, text: str) -> str:
        secret = self._secret.get_secret_value()
        return text.replace(secret, "***") if secret else text

    def _request(self) -> httpx.Response:
        data = {"grant_type": "client_credentials"}
        if self.scope:
            data["scope"] = self.scope
        secret = self._secret.get_secret_value()
        headers = {"Accept": "application/json"}
        if self.client_auth == "post":
            data.update(client_id=self.client_id, client_secret=secret)
        else:  # RFC 6749 section 2.3.1: form-urlencode both, then Basic
            basic = (f"{urllib.parse.quote_plus(self.client_id)}:"
                     f"{urllib.parse.quote_plus(secret)}").encode()
            headers["Authorization"] = "Basic " + base64.b64encode(basic).decode()
        with httpx.Client(timeout=self.timeout, follow_redirects=False,
                          transport=self._transport) as client:
            return client.post(self.token_url, data=data, headers=headers)

    def fetch(self) -> Token:
        where = display_url(self.token_url)
        started = self._clock()
        try:
            response = self._request()
        except httpx.TimeoutException:
            raise TokenUnavailable(f"OAuth token endpoint {where} did not answer within "
                                   f"{self.timeout:g}s ({env('sasl_oauth_timeout')})",
                                   permanent=False) from None
        except httpx.HTTPError as exc:
            raise TokenUnavailable(self._scrub(f"cannot reach OAuth token endpoint {where}: "
                                               f"{type(exc).__name__}: {exc}"),
                                   permanent=False) from None
        body = self._json(response)
        if response.status_code != 200:
            raise self._error(response.status_code, body)
        value = body.get("access_token")
        if not isinstance(value, str) or not value:
            raise TokenUnavailable(f"OAuth token endpoint {where} answered HTTP 200 without "
                                   "an access_token", permanent=True)
        token_type = body.get("token_type")
        if isinstance(token_type, str) and token_type.lower() != "bearer":
            raise TokenUnavailable(f"OAuth token endpoint {where} issued a {token_type!r} "
                                   "token; SASL/OAUTHBEARER needs a Bearer token",
                                   permanent=True)
        return Token(value, obtained_at=started,
                     expires_at=self._expiry(started, body.get("expires_in"), value))

    @staticmethod
    def _json(response: httpx.Response) -> dict[str, Any]:
        try:
            body = orjson.loads(response.content)
        except orjson.JSONDecodeError:
            return {}
        return body if isinstance(body, dict) else {}

    def _error(self, status: int, body: dict[str, Any]) -> TokenUnavailable:
        """RFC 6749 section 5.2 error -> one line (error code and description quoted)."""
        error = body.get("error")
        description = body.get("error_description")
        detail = f"HTTP {status}"
        if isinstance(error, str):
            detail += f" {error}"
        if isinstance(description, str):
            detail += f": {description[:200]}"
        permanent = (error in _PERMANENT_ERRORS or status in (400, 401, 403, 404, 405)) \
            and status != 429
        verb = ("refused the client credentials of" if error == "invalid_client" or status == 401
                else "refused the token request of")
        return TokenUnavailable(self._scrub(
            f"OAuth token endpoint {display_url(self.token_url)} {verb} "
            f"{env('sasl_oauth_client_id')}={self.client_id} ({detail})"), permanent=permanent)

    def _expiry(self, started: float, expires_in: object, value: str) -> float:
        if isinstance(expires_in, int | float) and not isinstance(expires_in, bool) \
                and expires_in > 0:
            return started + float(expires_in)
        if isinstance(expires_in, str) and expires_in.isdigit():  # some IdPs send a string
            return started + float(expires_in)
        exp = jwt_expiry(value)
        return exp if exp is not None and exp > started else started + DEFAULT_LIFETIME
