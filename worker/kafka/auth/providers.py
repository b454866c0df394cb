"""Which OAUTHBEARER token provider the settings ask for, built once per process.

`SESSIONWARDEN_SASL_OAUTH_TOKEN_PROVIDER` is `oidc`, `aws-msk-iam`, or
`module:attribute` naming the user's own `aiokafka.abc.AbstractTokenProvider`
(a subclass, an instance, or a factory returning one), imported at start so a
typo stops the run with one line instead of failing at the first connection.

One provider per distinct configuration and process: the worker's consumer,
its producers and the admin client share one token cache (and one token
fetch), however often `worker.kafka.client` translates the settings.
"""

from __future__ import annotations

import importlib
import threading
from typing import Any

from aiokafka.abc import AbstractTokenProvider

from worker.kafka.auth.config import KafkaSecurityError, check_security, env, parse_extensions
from worker.settings import Settings

_cache: dict[tuple[Any, ...], AbstractTokenProvider] = {}
_cache_lock = threading.Lock()


def _key(settings: Settings) -> tuple[Any, ...]:
    s = settings
    return (s.sasl_oauth_token_provider, s.sasl_oauth_token_url, s.sasl_oauth_client_id,
            s.sasl_oauth_client_secret, s.sasl_oauth_scope, s.sasl_oauth_client_auth,
            s.sasl_oauth_extensions, s.sasl_oauth_timeout, s.sasl_oauth_aws_region,
            s.sasl_oauth_aws_profile, s.sasl_oauth_aws_role_arn)


def token_provider(settings: Settings) -> AbstractTokenProvider:
    """The process's token provider for these settings (validated; built on first use)."""
    check_security(settings)
    key = _key(settings)
    with _cache_lock:
        provider = _cache.get(key)
        if provider is None:
            provider = _cache[key] = _build(settings)
        return provider


def _build(settings: Settings) -> AbstractTokenProvider:
    spec = (settings.sasl_oauth_token_provider or "").strip()
    if spec == "oidc":
        from worker.kafka.auth.oidc import ClientCredentialsTokenProvider  # noqa: PLC0415

        assert settings.sasl_oauth_token_url and settings.sasl_oauth_client_id
        assert settings.sasl_oauth_client_secret is not None  # check_security
        return ClientCredentialsTokenProvider(
            settings.sasl_oauth_token_url, settings.sasl_oauth_client_id,
            settings.sasl_oauth_client_secret, scope=settings.sasl_oauth_scope,
            client_auth=settings.sasl_oauth_client_auth,
            extensions=parse_extensions(settings.sasl_oauth_extensions),
            timeout=settings.sasl_oauth_timeout)
    if spec == "aws-msk-iam":
        from worker.kafka.auth.msk_iam import MskIamTokenProvider  # noqa: PLC0415

        return MskIamTokenProvider(settings.sasl_oauth_aws_region,
                                   profile=settings.sasl_oauth_aws_profile,
                                   role_arn=settings.sasl_oauth_aws_role_arn)
    return load_user_provider(spec)


def load_user_provider(spec: str) -> AbstractTokenProvider:
    """Import `module:attribute` and make an `AbstractTokenProvider` of it."""
    name = env("sasl_oauth_token_provider")
    module_name, _, attribute = spec.partition(":")
    try:
        obj: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            obj = getattr(obj, part)
    except Exception as exc:  # ImportError, AttributeError, or the module's own error
        raise KafkaSecurityError(f"cannot load {name}={spec}: {type(exc).__name__}: {exc}",
                                 ) from None
    if isinstance(obj, AbstractTokenProvider):
        return obj
    if isinstance(obj, type) and not issubclass(obj, AbstractTokenProvider):
        raise KafkaSecurityError(f"{name}={spec} is a class but not an "
                                 "aiokafka.abc.AbstractTokenProvider")
    if not callable(obj):
        raise KafkaSecurityError(f"{name}={spec} is neither an AbstractTokenProvider nor "
                                 "a class or factory making one")
    try:
        provider = obj()
    except Exception as exc:
        raise KafkaSecurityError(f"{name}={spec} failed to build a token provider: "
                                 f"{type(exc).__name__}: {exc}") from None
    if not isinstance(provider, AbstractTokenProvider):
        raise KafkaSecurityError(f"{name}={spec} returned {type(provider).__name__}, not an "
                                 "aiokafka.abc.AbstractTokenProvider")
    return provider
