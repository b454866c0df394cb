"""A real Kafka broker with secured listeners, and what its clients need.

Why: managed Kafka services (Confluent Cloud, MSK, Event Hubs) only accept
TLS, SASL and OAuth clients. A client-side mapping that is merely
"configured" proves nothing; these helpers build the real thing locally:

* `make_pki` -- a CA, a broker certificate for 127.0.0.1/localhost, a client
  certificate with a password-protected key, and a client certificate from a
  foreign CA (the "wrong certificate" case), all made with `cryptography`;
* `OAuthServer` -- a loopback OAuth 2.0 authorization server: the
  client-credentials grant (RFC 6749 section 4.4) signing RS256 JWTs, and the
  JWKS the broker validates them with;
* `start_secure_broker` -- one `LocalKafka` with, beside PLAINTEXT, an `MTLS`
  listener (SSL, client certificate required), a `SCRAM` listener (SASL_SSL,
  SCRAM-SHA-512 and PLAIN) and an `OAUTH` listener (SASL_SSL, OAUTHBEARER
  validated by Kafka's `OAuthBearerValidatorCallbackHandler` against the JWKS).
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import secrets
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from joserfc import jwt
from joserfc.jwk import RSAKey

from tests.kafka_plugin import load_kafka_local

AUDIENCE = "kafka"
_ONE_DAY = dt.timedelta(days=1)


# --- certificates ------------------------------------------------------------


@dataclass(frozen=True)
class PKI:
    """PEM files of one test PKI (paths) and the client key's password."""

    ca_cert: Path
    broker_keystore: Path  # the broker's key + certificate chain (Kafka PEM keystore)
    client_cert: Path
    client_key: Path  # encrypted with key_password
    key_password: str
    foreign_cert: Path  # a client certificate signed by a CA the broker does not trust
    foreign_key: Path  # not encrypted


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _cert(subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Certificate | None,
          issuer_key: ec.EllipticCurvePrivateKey, *, ca: bool = False,
          server: bool = False) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    builder = (x509.CertificateBuilder()
               .subject_name(_name(subject))
               .issuer_name(issuer.subject if issuer is not None else _name(subject))
               .public_key(key.public_key())
               .serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(minutes=5))
               .not_valid_after(now + _ONE_DAY)
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if ca:
        builder = builder.add_extension(x509.KeyUsage(
            digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
            key_encipherment=False, data_encipherment=False, key_agreement=False,
            encipher_only=False, decipher_only=False), critical=True)
    else:
        usages = [ExtendedKeyUsageOID.CLIENT_AUTH]
        if server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
            builder = builder.add_extension(x509.SubjectAlternativeName([
                x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                critical=False)
        builder = builder.add_extension(x509.ExtendedKeyUsage(usages), critical=False)
    return builder.sign(issuer_key, hashes.SHA256())


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _pkcs8(key: ec.EllipticCurvePrivateKey, password: str | None = None) -> bytes:
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(password.encode()) if password
        else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             encryption)


def make_pki(directory: Path, key_password: str) -> PKI:
    """A fresh CA, broker and client certificates (valid for one day) under directory."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, rogue_key = _key(), _key()
    ca = _cert("sessionwarden test CA", ca_key, None, ca_key, ca=True)
    rogue = _cert("someone else's CA", rogue_key, None, rogue_key, ca=True)
    broker_key, client_key, foreign_key = _key(), _key(), _key()
    broker = _cert("localhost", broker_key, ca, ca_key, server=True)
    client = _cert("sessionwarden-worker", client_key, ca, ca_key)
    foreign = _cert("sessionwarden-worker", foreign_key, rogue, rogue_key)

    def write(name: str, data: bytes) -> Path:
        path = directory / name
        path.write_bytes(data)
        path.chmod(0o600)
        return path

    return PKI(
        ca_cert=write("ca.pem", _pem(ca)),
        broker_keystore=write("broker-keystore.pem", _pkcs8(broker_key) + _pem(broker) + _pem(ca)),
        client_cert=write("client.pem", _pem(client)),
        client_key=write("client-key.pem", _pkcs8(client_key, key_password)),
        key_password=key_password,
        foreign_cert=write("foreign.pem", _pem(foreign)),
        foreign_key=write("foreign-key.pem", _pkcs8(foreign_key)))


# --- OAuth 2.0 authorization server ------------------------------------------


@dataclass
class OAuthServer:
    """Client-credentials token endpoint + JWKS on 127.0.0.1 (a real HTTP server).

    `clients` maps client id -> secret. Every grant is recorded in `grants`
    (client id, form fields except the secret, issued token) so tests can
    check what the worker asked for and find leaked tokens in logs.
    """

    clients: dict[str, str]
    lifetime: int = 3600
    key: RSAKey = field(default_factory=lambda: RSAKey.generate_key(
        2048, parameters={"kid": secrets.token_hex(4), "use": "sig", "alg": "RS256"}))
    grants: list[dict[str, Any]] = field(default_factory=list)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        assert self._server is not None, "server not started"
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/oauth2/token"

    @property
    def jwks_url(self) -> str:
        return f"{self.base_url}/oauth2/jwks"

    @property
    def issuer(self) -> str:
        return f"{self.base_url}/oauth2"

    def start(self) -> OAuthServer:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:  # quiet test output
                return

            def _send(self, status: int, body: dict[str, Any]) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Cache-Control", "no-store")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path == "/oauth2/jwks":
                    self._send(200, {"keys": [owner.key.as_dict(private=False)]})
                else:
                    self._send(404, {"error": "not_found"})

            def do_POST(self) -> None:
                if self.path != "/oauth2/token":
                    self._send(404, {"error": "not_found"})
                    return
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(urllib.parse.parse_qsl(self.rfile.read(length).decode()))
                self._send(*owner.grant(form, self.headers.get("Authorization")))

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,),
                                        name="oauth-server", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def grant(self, form: dict[str, str], authorization: str | None) -> tuple[int, dict[str, Any]]:
        """RFC 6749 section 4.4: client_secret_basic (section 2.3.1) or _post."""
        client_id, secret = form.get("client_id"), form.get("client_secret")
        if authorization and authorization.startswith("Basic "):
            raw = base64.b64decode(authorization[6:]).decode()
            user, _, password = raw.partition(":")
            client_id, secret = urllib.parse.unquote_plus(user), urllib.parse.unquote_plus(password)
        if form.get("grant_type") != "client_credentials":
            return 400, {"error": "unsupported_grant_type"}
        if client_id not in self.clients or self.clients[client_id] != secret:
            return 401, {"error": "invalid_client",
                         "error_description": "client authentication failed"}
        now = int(time.time())
        claims = {"iss": self.issuer, "aud": AUDIENCE, "sub": client_id, "iat": now,
                  "exp": now + self.lifetime, "scope": form.get("scope", "kafka"),
                  "jti": secrets.token_hex(8)}
        token = jwt.encode({"alg": "RS256", "kid": self.key.kid}, claims, self.key)
        self.grants.append({"client_id": client_id, "token": token,
                            "basic_auth": bool(authorization),
                            "form": {k: v for k, v in form.items() if k != "client_secret"}})
        return 200, {"access_token": token, "token_type": "Bearer", "expires_in": self.lifetime}


# --- the broker --------------------------------------------------------------


@dataclass(frozen=True)
class SecureKafka:
    """Addresses of the secured listeners and the credentials that open them."""

    plaintext: str
    mtls: str
    scram: str
    oauth: str
    pki: PKI
    scram_user: str
    scram_password: str
    oauth_server: OAuthServer
    client_id: str
    client_secret: str
    log_path: Path


def broker_listeners(scram_user: str, scram_password: str) -> list[Any]:
    """The three extra listeners (see module doc) as `kafka_local.Listener`s."""
    kl = load_kafka_local()
    return [
        kl.Listener("MTLS", "SSL", {"ssl.client.auth": "required"}),
        kl.Listener("SCRAM", "SASL_SSL", {
            "sasl.enabled.mechanisms": "SCRAM-SHA-512,PLAIN",
            "scram-sha-512.sasl.jaas.config":
                "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "plain.sasl.jaas.config":
                "org.apache.kafka.common.security.plain.PlainLoginModule required "
                f'user_{scram_user}="{scram_password}";'}),
        kl.Listener("OAUTH", "SASL_SSL", {
            "sasl.enabled.mechanisms": "OAUTHBEARER",
            "oauthbearer.sasl.jaas.config":
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;",
            "oauthbearer.sasl.server.callback.handler.class":
                "org.apache.kafka.common.security.oauthbearer.OAuthBearerValidatorCallbackHandler"}),
    ]


def start_secure_broker(run_dir: Path, pki_dir: Path, *, timeout: float = 120.0,
                        ) -> tuple[Any, SecureKafka]:
    """Start the OAuth server and the broker; returns (LocalKafka, SecureKafka).

    The caller stops both (`LocalKafka.stop()`, `SecureKafka.oauth_server.stop()`).
    """
    kl = load_kafka_local()
    pki = make_pki(pki_dir, key_password="kp-" + secrets.token_hex(8))
    scram_user, scram_password = "sessionwarden", "scram-" + secrets.token_hex(12)
    client_id, client_secret = "sessionwarden-worker", "cs-" + secrets.token_hex(16)
    oauth = OAuthServer({client_id: client_secret}).start()
    config = {
        "ssl.keystore.type": "PEM", "ssl.keystore.location": str(pki.broker_keystore),
        "ssl.truststore.type": "PEM", "ssl.truststore.location": str(pki.ca_cert),
        "sasl.oauthbearer.jwks.endpoint.url": oauth.jwks_url,
        "sasl.oauthbearer.expected.audience": AUDIENCE,
        "sasl.oauthbearer.expected.issuer": oauth.issuer,
    }
    broker = kl.LocalKafka(
        run_dir, die_with_parent=True, extra_config=config,
        listeners=broker_listeners(scram_user, scram_password),
        scram_users=[kl.ScramUser(scram_user, scram_password)],
        # Kafka 4.x refuses every OAuth URL not listed here (empty by default).
        jvm_properties={"org.apache.kafka.sasl.oauthbearer.allowed.urls": oauth.jwks_url})
    try:
        broker.start(timeout=timeout)
    except BaseException:
        oauth.stop()
        raise
    return broker, SecureKafka(
        plaintext=broker.bootstrap, mtls=broker.address("MTLS"), scram=broker.address("SCRAM"),
        oauth=broker.address("OAUTH"), pki=pki, scram_user=scram_user,
        scram_password=scram_password, oauth_server=oauth, client_id=client_id,
        client_secret=client_secret, log_path=broker.log_path)
