"""Broker-free tests of Kafka authentication: settings checks, TLS files, token providers.

Why: a managed cluster is reachable only with the right combination of
settings, and the token providers must cache, refresh and fail without
leaking a secret. The `oidc` provider is tested against a real OAuth server
on loopback (`tests.secure_kafka.OAuthServer`), the MSK IAM signer offline
with static AWS credentials. The secured-broker tests in
`tests/integration/test_kafka_auth.py` cover the same paths end to end.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import ssl
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import faust
import orjson
import pytest
from aiokafka.abc import AbstractTokenProvider
from pydantic import SecretStr

from tests.secure_kafka import OAuthServer, make_pki
from tests.token_providers import INSTANCE, StaticTokenProvider
from worker.cli import main
from worker.kafka.auth.config import KafkaSecurityError, check_security, parse_extensions
from worker.kafka.auth.msk_iam import MskIamTokenProvider
from worker.kafka.auth.oidc import ClientCredentialsTokenProvider, check_token_url, jwt_expiry
from worker.kafka.auth.providers import load_user_provider, token_provider
from worker.kafka.auth.tls import ssl_context
from worker.kafka.auth.tokens import Token, TokenUnavailable
from worker.kafka.client import aiokafka_security, faust_credentials
from worker.settings import Settings

SECRET = "s3cr:et+/%value"  # characters that RFC 6749 section 2.3.1 encoding must survive


@pytest.fixture
def oauth() -> Iterator[OAuthServer]:
    server = OAuthServer({"worker": SECRET}, lifetime=600).start()
    try:
        yield server
    finally:
        server.stop()


def oidc_settings(oauth: OAuthServer, **over: object) -> Settings:
    values: dict[str, object] = {
        "security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER",
        "sasl_oauth_token_provider": "oidc", "sasl_oauth_token_url": oauth.token_url,
        "sasl_oauth_client_id": "worker", "sasl_oauth_client_secret": SECRET,
        "sasl_oauth_extensions": "logicalCluster=lkc-1,identityPoolId=pool-2"}
    values.update(over)
    return Settings(**values)  # type: ignore[arg-type]


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


# --- the combination of settings ---------------------------------------------


@pytest.mark.parametrize(("settings", "message"), [
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER"},
     "OAUTHBEARER needs SESSIONWARDEN_SASL_OAUTH_TOKEN_PROVIDER"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "SCRAM-SHA-512", "sasl_username": "u"},
     "SCRAM-SHA-512 needs SESSIONWARDEN_SASL_PASSWORD$"),
    ({"security_protocol": "SASL_PLAINTEXT"}, "mechanism PLAIN needs"),
    ({"sasl_mechanism": "SCRAM-SHA-256"}, "needs SESSIONWARDEN_SECURITY_PROTOCOL=SASL_SSL"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "PLAIN", "sasl_username": "u",
      "sasl_password": "p", "sasl_oauth_token_provider": "oidc"},
     "it needs SESSIONWARDEN_SASL_MECHANISM=OAUTHBEARER"),
    ({"ssl_certfile": "/c.pem"}, "SESSIONWARDEN_SSL_CERTFILE need SESSIONWARDEN_SECURITY_PROTOCOL"),
    ({"security_protocol": "SSL", "ssl_keyfile": "/k.pem"}, "needs SESSIONWARDEN_SSL_CERTFILE"),
    ({"security_protocol": "SSL", "ssl_keyfile_password": "x"}, "needs SESSIONWARDEN_SSL_CERTFILE"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER",
      "sasl_oauth_token_provider": "oidc", "sasl_oauth_client_id": "c"},
     "oidc needs SESSIONWARDEN_SASL_OAUTH_TOKEN_URL and SESSIONWARDEN_SASL_OAUTH_CLIENT_SECRET"),
    ({"security_protocol": "SASL_PLAINTEXT", "sasl_mechanism": "OAUTHBEARER",
      "sasl_oauth_token_provider": "aws-msk-iam"}, "aws-msk-iam needs"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER",
      "sasl_oauth_token_provider": "aws-msk-iam", "sasl_oauth_extensions": "a=b"},
     "applies to the oidc provider only"),
    ({"security_protocol": "SASL_SSL", "sasl_mechanism": "OAUTHBEARER",
      "sasl_oauth_token_provider": "my provider"}, "neither a built-in provider"),
])
def test_incoherent_settings_are_one_line_naming_the_variables(
        settings: dict[str, str], message: str) -> None:
    with pytest.raises(KafkaSecurityError, match=message) as info:
        check_security(Settings(**settings))  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError) and "\n" not in str(info.value)


def test_coherent_settings_pass() -> None:
    assert check_security(Settings()) == "PLAINTEXT"
    assert check_security(Settings(security_protocol="SSL", ssl_certfile="/c.pem")) == "SSL"
    assert check_security(Settings(
        security_protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER",
        sasl_oauth_token_provider="tests.token_providers:INSTANCE")) == "SASL_SSL"


def test_sasl_extensions_follow_rfc_7628() -> None:
    assert parse_extensions("logicalCluster=lkc-1, identityPoolId=pool-2,") == {
        "logicalCluster": "lkc-1", "identityPoolId": "pool-2"}
    assert parse_extensions(None) == {}
    for bad in ("no-equals", "bad_key=1", "auth=x", "a=1,a=2", "k=\x01"):
        with pytest.raises(KafkaSecurityError, match="SESSIONWARDEN_SASL_OAUTH_EXTENSIONS"):
            parse_extensions(bad)


def test_a_bad_combination_exits_2_before_touching_kafka(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """Regression: today's code raised a ValueError traceback from inside `produce`."""
    source = tmp_path / "e.jsonl"
    source.write_text("{}\n")
    monkeypatch.setenv("SESSIONWARDEN_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("SESSIONWARDEN_SASL_MECHANISM", "SCRAM-SHA-512")
    monkeypatch.setenv("SESSIONWARDEN_STARTUP_TIMEOUT", "30")
    assert main(["produce", str(source), "--broker", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["sessionwarden: SESSIONWARDEN_SECURITY_PROTOCOL=SASL_SSL with SASL mechanism "
                   "SCRAM-SHA-512 needs SESSIONWARDEN_SASL_USERNAME and "
                   "SESSIONWARDEN_SASL_PASSWORD"]


def test_an_unreachable_broker_is_retried_and_reported_with_its_cause(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    """Transient: the login check re-raises the real cause for `connect_admin` to retry."""
    source = tmp_path / "e.jsonl"
    source.write_text("{}\n")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("SESSIONWARDEN_STARTUP_TIMEOUT", "1.5")
    assert main(["produce", str(source), "--broker", f"127.0.0.1:{port}"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith(f"sessionwarden: Kafka broker 127.0.0.1:{port} not reachable after")
    assert "Connect call failed" in last and "Unable to bootstrap" not in last, last


# --- mapping to aiokafka and Faust --------------------------------------------


def test_oauthbearer_maps_to_one_shared_token_provider(oauth: OAuthServer) -> None:
    """Regression: today OAUTHBEARER was mapped to a username and password."""
    settings = oidc_settings(oauth)
    kwargs = aiokafka_security(settings)
    provider = kwargs["sasl_oauth_token_provider"]
    assert kwargs["sasl_mechanism"] == "OAUTHBEARER" and kwargs["ssl_context"] is not None
    assert "sasl_plain_password" not in kwargs
    assert isinstance(provider, ClientCredentialsTokenProvider)
    assert provider.extensions() == {"logicalCluster": "lkc-1", "identityPoolId": "pool-2"}
    creds = faust_credentials(settings)
    assert isinstance(creds, faust.OAuthCredentials)
    assert creds.oauth_cb is provider and creds.protocol.value == "SASL_SSL"
    assert aiokafka_security(oidc_settings(oauth))["sasl_oauth_token_provider"] is provider
    other = aiokafka_security(oidc_settings(oauth, sasl_oauth_scope="x"))
    assert other["sasl_oauth_token_provider"] is not provider
    for text in (repr(provider), repr(creds), repr(settings)):
        assert SECRET not in text


# --- TLS files ------------------------------------------------------------------


def test_client_certificate_with_key_password_and_clear_errors(tmp_path: Path) -> None:
    pki = make_pki(tmp_path, key_password="kp-123")
    base = {"security_protocol": "SSL", "ssl_cafile": str(pki.ca_cert),
            "ssl_certfile": str(pki.client_cert), "ssl_keyfile": str(pki.client_key)}
    assert "ENCRYPTED" in pki.client_key.read_text()
    context = ssl_context(Settings(**base, ssl_keyfile_password="kp-123"))  # type: ignore[arg-type]
    assert isinstance(context, ssl.SSLContext) and context.check_hostname
    with pytest.raises(KafkaSecurityError, match="wrong or missing "
                       "SESSIONWARDEN_SSL_KEYFILE_PASSWORD") as info:
        ssl_context(Settings(**base, ssl_keyfile_password="kp-wrong"))  # type: ignore[arg-type]
    assert "kp-wrong" not in str(info.value)
    with pytest.raises(KafkaSecurityError, match="wrong or missing"):
        ssl_context(Settings(**base))  # type: ignore[arg-type]
    with pytest.raises(KafkaSecurityError, match="cannot read SESSIONWARDEN_SSL_CAFILE="):
        ssl_context(Settings(**{**base, "ssl_cafile": str(tmp_path / "missing.pem")}))  # type: ignore[arg-type]
    with pytest.raises(KafkaSecurityError, match="holds no usable PEM certificate"):
        ssl_context(Settings(security_protocol="SSL", ssl_cafile=str(pki.client_key)))
    with pytest.raises(KafkaSecurityError, match="must be PEM and belong together"):
        ssl_context(Settings(**{**base, "ssl_keyfile": str(pki.foreign_key)}))  # type: ignore[arg-type]


# --- oidc: client-credentials grant -------------------------------------------


def test_oidc_basic_auth_scope_and_cached_token(oauth: OAuthServer) -> None:
    clock = Clock()
    provider = ClientCredentialsTokenProvider(oauth.token_url, "worker", SecretStr(SECRET),
                                              scope="kafka", clock=clock)
    token = provider.token_now()
    assert oauth.grants[-1]["token"] == token and oauth.grants[-1]["basic_auth"]
    assert oauth.grants[-1]["form"] == {"grant_type": "client_credentials", "scope": "kafka"}
    clock.now += 0.79 * 600
    assert asyncio.run(provider.token()) == token and len(oauth.grants) == 1  # cached
    clock.now += 0.02 * 600  # past 80% of its lifetime: refreshed
    assert provider.token_now() != token and len(oauth.grants) == 2


def test_oidc_client_secret_post(oauth: OAuthServer) -> None:
    provider = ClientCredentialsTokenProvider(oauth.token_url, "worker", SecretStr(SECRET),
                                              client_auth="post")
    assert provider.token_now() == oauth.grants[-1]["token"]
    assert not oauth.grants[-1]["basic_auth"]
    assert oauth.grants[-1]["form"] == {"grant_type": "client_credentials", "client_id": "worker"}


def test_oidc_rejected_secret_is_permanent_and_never_echoed(oauth: OAuthServer) -> None:
    provider = ClientCredentialsTokenProvider(oauth.token_url, "worker",
                                              SecretStr("wrong-" + SECRET))
    with pytest.raises(TokenUnavailable) as info:
        provider.token_now()
    message = info.value.args[0]
    assert info.value.permanent
    assert message == (f"OAuth token endpoint {oauth.token_url} refused the client credentials "
                       "of SESSIONWARDEN_SASL_OAUTH_CLIENT_ID=worker (HTTP 401 invalid_client: "
                       "client authentication failed)")
    assert SECRET not in message


def test_oidc_unreachable_and_silent_endpoints_are_transient() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts into the backlog, never answers
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/token"
        provider = ClientCredentialsTokenProvider(url, "worker", SecretStr(SECRET), timeout=0.3)
        with pytest.raises(TokenUnavailable, match=r"did not answer within 0\.3s") as info:
            provider.token_now()
        assert not info.value.permanent
    closed = ClientCredentialsTokenProvider(url, "worker", SecretStr(SECRET), timeout=2)
    with pytest.raises(TokenUnavailable, match="cannot reach OAuth token endpoint") as info:
        closed.token_now()
    assert not info.value.permanent


def test_oidc_keeps_a_valid_token_when_a_refresh_fails(oauth: OAuthServer) -> None:
    clock = Clock()
    provider = ClientCredentialsTokenProvider(oauth.token_url, "worker", SecretStr(SECRET),
                                              clock=clock)
    token = provider.token_now()
    oauth.stop()  # the IdP goes away
    clock.now += 0.9 * 600
    assert provider.token_now() == token  # still valid for 60 s: used, with a warning
    clock.now += 0.1 * 600
    with pytest.raises(TokenUnavailable):
        provider.token_now()  # expired: nothing to fall back on


def test_oidc_lifetime_from_expires_in_or_the_jwt() -> None:
    now = 1_000.0
    claims = base64.urlsafe_b64encode(orjson.dumps({"exp": 4_600})).rstrip(b"=").decode()
    jwt = f"eyJhbGciOiJub25lIn0.{claims}.sig"
    assert jwt_expiry(jwt) == 4_600.0 and jwt_expiry("opaque") is None
    provider = ClientCredentialsTokenProvider("https://idp.example/token", "c", SecretStr("s"))
    assert provider._expiry(now, 120, jwt) == 1_120.0
    assert provider._expiry(now, "90", jwt) == 1_090.0
    assert provider._expiry(now, None, jwt) == 4_600.0
    assert provider._expiry(now, None, "opaque") == 1_300.0
    assert Token("v", 0.0, 100.0).refresh_at == 80.0
    assert "secret-token-value" not in repr(Token("secret-token-value", 0.0, 1.0))


def test_oidc_token_url_must_be_https_except_on_loopback() -> None:
    assert check_token_url("https://login.example.com/oauth2/token")
    assert check_token_url("http://127.0.0.1:8080/token") and check_token_url("http://[::1]/t")
    with pytest.raises(KafkaSecurityError, match="must be an https:// URL") as info:
        check_token_url("http://user:pw@idp.example.com/token?x=1")
    assert "pw" not in str(info.value) and "x=1" not in str(info.value)


def test_basic_credentials_are_form_encoded_first(oauth: OAuthServer) -> None:
    """RFC 6749 section 2.3.1: the server decodes after Base64; ':' in the secret survives."""
    ClientCredentialsTokenProvider(oauth.token_url, "worker", SecretStr(SECRET)).token_now()
    assert oauth.grants[-1]["client_id"] == "worker"
    assert urllib.parse.quote_plus(SECRET) != SECRET  # the case the encoding is for


# --- aws-msk-iam ----------------------------------------------------------------


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """No real AWS configuration, no instance metadata: only what a test sets."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ROLE_ARN",
                 "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    return monkeypatch


def test_msk_iam_token_is_a_presigned_connect_url(aws_env: pytest.MonkeyPatch) -> None:
    aws_env.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY")
    clock = Clock(time.time())
    provider = MskIamTokenProvider("eu-west-1", clock=clock)
    value = provider.token_now()
    url = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4)).decode()
    parts = urllib.parse.urlsplit(url)
    query = urllib.parse.parse_qs(parts.query)
    assert parts.netloc == "kafka.eu-west-1.amazonaws.com"
    assert query["Action"] == ["kafka-cluster:Connect"] and query["X-Amz-Expires"] == ["900"]
    assert query["X-Amz-Credential"][0].startswith("AKIDEXAMPLE/")
    assert "wJalrXUtnFEMI" not in url
    assert provider._token is not None
    assert 850 < provider._token.expires_at - clock.now <= 901  # signed at whole seconds
    assert provider.describe() == "aws-msk-iam eu-west-1"


def test_msk_iam_without_credentials_or_region_says_so(aws_env: pytest.MonkeyPatch) -> None:
    with pytest.raises(KafkaSecurityError, match="SESSIONWARDEN_SASL_OAUTH_AWS_REGION"):
        MskIamTokenProvider(None)
    aws_env.setenv("AWS_REGION", "us-east-2")
    provider = MskIamTokenProvider(None)
    assert provider.region == "us-east-2"
    with pytest.raises(TokenUnavailable, match="no AWS credentials found") as info:
        provider.token_now()
    assert info.value.permanent


def test_msk_iam_without_the_optional_package_exits_2(
        aws_env: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    aws_env.setitem(sys.modules, "aws_msk_iam_sasl_signer", None)  # import fails
    source = tmp_path / "e.jsonl"
    source.write_text("{}\n")
    for name, value in {"SECURITY_PROTOCOL": "SASL_SSL", "SASL_MECHANISM": "OAUTHBEARER",
                        "SASL_OAUTH_TOKEN_PROVIDER": "aws-msk-iam",
                        "SASL_OAUTH_AWS_REGION": "eu-north-1"}.items():
        aws_env.setenv(f"SESSIONWARDEN_{name}", value)
    assert main(["produce", str(source), "--broker", "127.0.0.1:1"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["sessionwarden: SESSIONWARDEN_SASL_OAUTH_TOKEN_PROVIDER=aws-msk-iam needs "
                   "the optional package aws-msk-iam-sasl-signer-python: "
                   "pip install 'sessionwarden[msk]'"]


# --- module:attribute -------------------------------------------------------------


@pytest.mark.parametrize("spec", ["tests.token_providers:StaticTokenProvider",
                                  "tests.token_providers:make_provider"])
def test_user_provider_class_or_factory_is_built(spec: str) -> None:
    assert isinstance(load_user_provider(spec), StaticTokenProvider)


def test_user_provider_instance_is_used_as_is() -> None:
    settings = Settings(security_protocol="SASL_SSL", sasl_mechanism="OAUTHBEARER",
                        sasl_oauth_token_provider="tests.token_providers:INSTANCE")
    assert token_provider(settings) is INSTANCE
    assert isinstance(INSTANCE, AbstractTokenProvider)


@pytest.mark.parametrize(("spec", "message"), [
    ("tests.no_such_module:Provider", "ModuleNotFoundError"),
    ("tests.token_providers:Missing", "AttributeError"),
    ("tests.token_providers:NotAProvider", "is a class but not an"),
    ("tests.token_providers:TOKEN_ENV", "neither an AbstractTokenProvider"),
])
def test_user_provider_errors_name_the_setting(spec: str, message: str) -> None:
    with pytest.raises(KafkaSecurityError, match=message) as info:
        load_user_provider(spec)
    assert "SESSIONWARDEN_SASL_OAUTH_TOKEN_PROVIDER" in str(info.value)
