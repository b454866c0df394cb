"""The TLS context of every Kafka client: trust store, client certificate (mTLS), key.

Why a module: a missing file or a wrong key password otherwise raises a bare
`ssl.SSLError: [SSL] PEM lib` from deep inside a client; here it becomes one
line naming the setting. The key password is handed to OpenSSL and never
appears in a message.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from worker.kafka.auth.config import KafkaSecurityError, env
from worker.settings import Settings


def _readable(name: str, value: str | None) -> str | None:
    if not value:
        return None
    path = Path(value).expanduser()
    try:
        with path.open("rb"):
            pass
    except OSError as exc:
        raise KafkaSecurityError(f"cannot read {env(name)}={value}: {exc.strerror}") from None
    return str(path)


def ssl_context(settings: Settings) -> ssl.SSLContext | None:
    """The client TLS context for SSL/SASL_SSL (None otherwise).

    Server certificates are verified against `ssl_cafile` (or the system
    trust store when unset) and the broker's host name is checked. A client
    certificate (`ssl_certfile`, `ssl_keyfile`, `ssl_keyfile_password`) is
    presented when the broker asks for one (mTLS).
    """
    if settings.security_protocol not in ("SSL", "SASL_SSL"):
        return None
    from aiokafka.helpers import create_ssl_context  # noqa: PLC0415

    cafile = _readable("ssl_cafile", settings.ssl_cafile)
    certfile = _readable("ssl_certfile", settings.ssl_certfile)
    keyfile = _readable("ssl_keyfile", settings.ssl_keyfile)
    secret = settings.ssl_keyfile_password
    try:
        context: ssl.SSLContext = create_ssl_context(
            cafile=cafile, certfile=certfile, keyfile=keyfile,
            # A callable, never None: without a password OpenSSL would prompt on the TTY.
            password=secret.get_secret_value if secret is not None else _no_password)
    except ssl.SSLError as exc:
        if certfile is None:  # only the CA file was loaded
            raise KafkaSecurityError(
                f"{env('ssl_cafile')}={cafile} holds no usable PEM certificate ({exc.reason})",
            ) from None
        hint = ("wrong or missing " + env("ssl_keyfile_password")
                if secret is not None or "encrypted" in _pem_kind(keyfile or certfile)
                else "certificate and key must be PEM and belong together")
        raise KafkaSecurityError(
            f"cannot load the client certificate {env('ssl_certfile')}={certfile}"
            + (f" with {env('ssl_keyfile')}={keyfile}" if keyfile else "")
            + f": {hint} ({exc.reason or exc.strerror})") from None
    return context


def _no_password() -> str:
    """An encrypted key with no password set fails to load instead of prompting."""
    return ""


def _pem_kind(path: str) -> str:
    """'encrypted' when the PEM key is password-protected (to word the error)."""
    try:
        head = Path(path).read_text(errors="replace")
    except OSError:
        return ""
    return "encrypted" if "ENCRYPTED" in head else ""
