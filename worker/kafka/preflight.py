"""One real login at start-up: authenticate the way every client will, or stop.

Why: aiokafka hides why a connection failed (`Unable to bootstrap`), and
its clients, like Faust, treat every failure as transient. A client
certificate the broker rejects, a wrong SCRAM password or an OAuth client
secret the IdP refuses would otherwise be retried until the start-up timeout
and then reported as an unreachable broker. `check_login` opens one
connection per bootstrap address with the clients' own options
(`aiokafka_security`) -- TLS handshake, SASL exchange, a metadata request --
and turns a failure that retrying cannot fix into `CouldNotRun` (exit 2)
with one line naming the setting. A transient failure (refused, timed out,
DNS, token endpoint down) is re-raised as it is:
`worker.kafka.startup.connect_admin`, which calls this on every attempt,
retries it until `SESSIONWARDEN_STARTUP_TIMEOUT`. No message contains a
secret.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from typing import Any

from worker.errors import CouldNotRun
from worker.kafka.auth.config import env
from worker.kafka.auth.tokens import TokenUnavailable
from worker.settings import Settings

log = logging.getLogger("sessionwarden.kafka")

_TLS_RECORD = 0x14000000
"""A "message size" this large is a TLS record header read as Kafka framing."""


class _Fatal(Exception):
    """A failure retrying cannot fix (already worded for the user)."""


async def check_login(settings: Settings, *, request_timeout: float = 10.0) -> None:
    """Log in once (first bootstrap address that answers); `CouldNotRun` if it cannot work.

    Raises the last transient error when no address could be reached.
    """
    from aiokafka.conn import collect_hosts, create_conn  # noqa: PLC0415
    from aiokafka.protocol.metadata import MetadataRequest  # noqa: PLC0415

    from worker.kafka.client import aiokafka_security, bootstrap_servers  # noqa: PLC0415

    security = aiokafka_security(settings)  # settings errors surface here, before any I/O
    last: BaseException | None = None
    for host, port, _family in collect_hosts(bootstrap_servers(settings.broker),
                                             randomize=False):
        address = f"{host}:{port}"
        try:
            conn = await create_conn(host, port, client_id=f"{settings.app_id}-login-check",
                                     request_timeout_ms=int(request_timeout * 1000), **security)
            try:
                metadata = await conn.send(MetadataRequest([]))
            finally:
                conn.close()
            if not metadata.brokers:
                raise _Fatal(f"Kafka at {address} accepted the connection but returned no "
                             "cluster metadata: the login did not complete")
        except _Fatal as exc:
            raise CouldNotRun(_scrub(str(exc), settings)) from None
        except Exception as exc:
            fatal, message = describe(exc, settings, address)
            if fatal:
                raise CouldNotRun(_scrub(message, settings)) from None
            last = exc
            continue
        log.info("Kafka login checked", extra={
            "broker": address, "security_protocol": settings.security_protocol,
            "sasl_mechanism": settings.sasl_mechanism})
        return
    assert last is not None  # collect_hosts never returns an empty list for our brokers
    raise last


def _scrub(text: str, settings: Settings) -> str:
    """Belt and braces: no configured secret value survives into a message."""
    for secret in (settings.sasl_password, settings.ssl_keyfile_password,
                   settings.sasl_oauth_client_secret):
        value = secret.get_secret_value() if secret is not None else ""
        if value:
            text = text.replace(value, "***")
    return " ".join(text.split())


def _message(exc: BaseException) -> str:
    """The message itself: aiokafka's `str()` prefixes "[Error 58] ClassName: "."""
    first = exc.args[0] if exc.args else None
    return first if isinstance(first, str) and first else type(exc).__name__


def _root(exc: BaseException) -> BaseException:
    """The SSL or read error behind aiokafka's "Connection at h:p closed"."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, ssl.SSLError | asyncio.IncompleteReadError):
            return current
        current = current.__cause__ or current.__context__
    return exc


def describe(exc: BaseException, settings: Settings, address: str) -> tuple[bool, str]:
    """(fatal, one-line message) for a failed login attempt at address."""
    from aiokafka import errors  # noqa: PLC0415

    protocol = settings.security_protocol
    mechanism = settings.sasl_mechanism or "PLAIN"
    if isinstance(exc, TokenUnavailable):
        return exc.permanent, _message(exc)
    if isinstance(exc, errors.SaslAuthenticationFailed | errors.AuthenticationFailedError):
        broker_says = _message(exc)
        if mechanism == "OAUTHBEARER":
            return True, (f"Kafka at {address} rejected the OAUTHBEARER token from "
                          f"{env('sasl_oauth_token_provider')}="
                          f"{settings.sasl_oauth_token_provider}: {broker_says}")
        return True, (f"Kafka at {address} rejected the SASL {mechanism} login of "
                      f"{env('sasl_username')}={settings.sasl_username}: {broker_says}")
    if isinstance(exc, errors.UnsupportedSaslMechanismError):
        return True, (f"Kafka at {address} does not offer SASL mechanism {mechanism} on this "
                      f"listener ({env('sasl_mechanism')})")
    if isinstance(exc, errors.IllegalSaslStateError):
        return True, (f"the listener at {address} does not expect SASL: is "
                      f"{env('security_protocol')}={protocol} the listener's protocol?")
    root = _root(exc)
    if isinstance(root, ssl.SSLCertVerificationError):
        return True, (f"cannot verify the TLS certificate of Kafka at {address} "
                      f"({root.verify_message}): set {env('ssl_cafile')} to the CA that "
                      "signed it")
    if isinstance(root, ssl.SSLError) and not isinstance(
            root, ssl.SSLEOFError | ssl.SSLZeroReturnError):
        return True, _tls_failure(root, settings, address)
    if isinstance(root, asyncio.IncompleteReadError) and (root.expected or 0) >= _TLS_RECORD \
            and protocol in ("PLAINTEXT", "SASL_PLAINTEXT"):
        return True, (f"Kafka at {address} answered with TLS: set "
                      f"{env('security_protocol')}=SSL or SASL_SSL (now {protocol})")
    if isinstance(exc, errors.BrokerResponseError):
        return True, (f"Kafka at {address} refused the connection: {type(exc).__name__}: "
                      f"{_message(exc)}")
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, TimeoutError):
        return False, f"{address}: timed out"
    if isinstance(exc, OSError | errors.KafkaError):  # refused, reset, DNS, closed: retry
        return False, f"{address}: {detail}"
    if mechanism == "OAUTHBEARER":  # only a token provider runs our code in a login
        return True, (f"the token provider {env('sasl_oauth_token_provider')}="
                      f"{settings.sasl_oauth_token_provider} failed: "
                      f"{type(exc).__name__}: {detail}")
    return True, f"connecting to Kafka at {address} failed: {type(exc).__name__}: {detail}"


def _tls_failure(err: ssl.SSLError, settings: Settings, address: str) -> str:
    reason: Any = err.reason or err.strerror or str(err)
    reason = str(reason)
    if "WRONG_VERSION_NUMBER" in reason or "RECORD_LAYER" in reason:
        return (f"the listener at {address} does not speak TLS ({reason}): check "
                f"{env('security_protocol')}={settings.security_protocol} and the port")
    if "ALERT" in reason and ("CERTIFICATE" in reason or "UNKNOWN_CA" in reason
                              or "HANDSHAKE_FAILURE" in reason):
        if not settings.ssl_certfile:
            return (f"Kafka at {address} requires a TLS client certificate (mTLS) and ended "
                    f"the handshake ({reason}): set {env('ssl_certfile')} and "
                    f"{env('ssl_keyfile')}")
        return (f"Kafka at {address} rejected the TLS client certificate "
                f"{env('ssl_certfile')}={settings.ssl_certfile} ({reason}): it must be "
                "valid and signed by a CA in the broker's truststore")
    return f"TLS with Kafka at {address} failed: {reason}"
