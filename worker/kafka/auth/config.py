"""Is this combination of Kafka security settings usable? One clear line if not.

Why here and not in pydantic: each setting is valid alone (pydantic checks
that); only some combinations work, and a wrong one otherwise surfaces much
later as a client retrying a handshake. The check runs before anything
touches Kafka and names the `SESSIONWARDEN_*` variables to fix, never a
secret's value.
"""

from __future__ import annotations

import re

from worker.errors import CouldNotRun
from worker.settings import Settings

PROVIDERS = ("oidc", "aws-msk-iam")
"""Built-in token providers; anything else must be `module:attribute`."""

_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
# RFC 7628 section 3.1: key = 1*(ALPHA); value = *(VCHAR / SP / HTAB / CR / LF).
_EXT_KEY = re.compile(r"^[A-Za-z]+$")
_EXT_VALUE = re.compile(r"^[\x21-\x7e \t\r\n]*$")


class KafkaSecurityError(CouldNotRun, ValueError):
    """Kafka security settings that cannot work together (exit 2, one line)."""


def env(name: str) -> str:
    """The environment variable of a setting, as users write it."""
    return f"SESSIONWARDEN_{name.upper()}"


def _need(settings: Settings, why: str, *names: str) -> None:
    missing = [env(n) for n in names if not getattr(settings, n)]
    if missing:
        raise KafkaSecurityError(f"{why} needs {' and '.join(missing)}")


def parse_extensions(text: str | None) -> dict[str, str]:
    """`key=value,key=value` -> SASL/OAUTHBEARER extensions (RFC 7628 section 3.1).

    The comma-separated form is the one librdkafka and Confluent's docs use
    for `sasl.oauthbearer.extensions`.
    """
    extensions: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.strip().partition("=")
        if not sep or not _EXT_KEY.match(key) or not _EXT_VALUE.match(value):
            raise KafkaSecurityError(
                f"{env('sasl_oauth_extensions')}: {item.strip()!r} is not key=value with an "
                "alphabetic key (RFC 7628 section 3.1)")
        if key == "auth" or key in extensions:
            raise KafkaSecurityError(
                f"{env('sasl_oauth_extensions')}: key {key!r} is reserved or repeated")
        extensions[key] = value
    return extensions


def check_security(settings: Settings) -> str:
    """Validate the security settings; return the security protocol.

    Raises `KafkaSecurityError` (a `CouldNotRun`: exit 2) naming the variables.
    """
    protocol = settings.security_protocol
    mechanism = settings.sasl_mechanism
    tls = protocol in ("SSL", "SASL_SSL")
    if not protocol.startswith("SASL"):
        if mechanism is not None:
            raise KafkaSecurityError(
                f"{env('sasl_mechanism')}={mechanism} needs {env('security_protocol')}=SASL_SSL "
                f"(or SASL_PLAINTEXT), not {protocol}")
    elif mechanism == "OAUTHBEARER":
        _check_oauth(settings, protocol)
    else:
        _need(settings, f"{env('security_protocol')}={protocol} with SASL mechanism "
                        f"{mechanism or 'PLAIN'}", "sasl_username", "sasl_password")
    if settings.sasl_oauth_token_provider and mechanism != "OAUTHBEARER":
        raise KafkaSecurityError(
            f"{env('sasl_oauth_token_provider')} is set: it needs "
            f"{env('sasl_mechanism')}=OAUTHBEARER")
    files = [n for n in ("ssl_cafile", "ssl_certfile", "ssl_keyfile") if getattr(settings, n)]
    if files and not tls:
        raise KafkaSecurityError(
            f"{' and '.join(env(n) for n in files)} need {env('security_protocol')}=SSL or "
            f"SASL_SSL, not {protocol}")
    if settings.ssl_keyfile and not settings.ssl_certfile:
        raise KafkaSecurityError(f"{env('ssl_keyfile')} needs {env('ssl_certfile')} "
                                 "(the client certificate it belongs to)")
    if settings.ssl_keyfile_password is not None and not settings.ssl_certfile:
        raise KafkaSecurityError(f"{env('ssl_keyfile_password')} needs {env('ssl_certfile')}")
    return protocol


def _check_oauth(settings: Settings, protocol: str) -> None:
    provider = (settings.sasl_oauth_token_provider or "").strip()
    if not provider:
        raise KafkaSecurityError(
            f"{env('sasl_mechanism')}=OAUTHBEARER needs {env('sasl_oauth_token_provider')} "
            "(oidc, aws-msk-iam or module:attribute)")
    if provider == "oidc":
        _need(settings, f"{env('sasl_oauth_token_provider')}=oidc",
              "sasl_oauth_token_url", "sasl_oauth_client_id", "sasl_oauth_client_secret")
        parse_extensions(settings.sasl_oauth_extensions)
        return
    if settings.sasl_oauth_extensions:
        raise KafkaSecurityError(
            f"{env('sasl_oauth_extensions')} applies to the oidc provider only; a "
            f"{provider} provider sends its own extensions")
    if provider == "aws-msk-iam":
        if protocol != "SASL_SSL":
            raise KafkaSecurityError(
                f"{env('sasl_oauth_token_provider')}=aws-msk-iam needs "
                f"{env('security_protocol')}=SASL_SSL (MSK serves IAM on TLS ports only)")
        return
    if not _SPEC.match(provider):
        raise KafkaSecurityError(
            f"{env('sasl_oauth_token_provider')}={provider!r} is neither a built-in provider "
            f"({', '.join(PROVIDERS)}) nor module:attribute")
