"""`aws-msk-iam`: Amazon MSK IAM authentication over SASL/OAUTHBEARER.

MSK's IAM access control takes, as the OAUTHBEARER token, a SigV4-presigned
`kafka-cluster:Connect` URL made from the caller's IAM credentials; AWS's
`aws-msk-iam-sasl-signer-python` makes it (valid 15 minutes) and is the
documented way for non-Java clients
(https://docs.aws.amazon.com/msk/latest/developerguide/configure-clients-for-iam-access-control.html).
It is an optional dependency (`pip install 'sessionwarden[msk]'`): only the
deployments that use MSK IAM pull in boto3.

Credentials come from the default AWS chain (environment, web identity,
ECS/EC2 roles), a named profile, or an assumed role; signing needs no
network unless a role is assumed or instance credentials are fetched.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

from worker.kafka.auth.config import KafkaSecurityError, env
from worker.kafka.auth.tokens import CachedTokenProvider, Token, TokenUnavailable

INSTALL_HINT = "pip install 'sessionwarden[msk]'"


def _signer() -> Any:
    try:
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider  # noqa: PLC0415
    except ImportError:
        raise KafkaSecurityError(
            f"{env('sasl_oauth_token_provider')}=aws-msk-iam needs the optional package "
            f"aws-msk-iam-sasl-signer-python: {INSTALL_HINT}") from None
    return MSKAuthTokenProvider


class MskIamTokenProvider(CachedTokenProvider):
    """Presigned MSK IAM tokens from `aws_msk_iam_sasl_signer.MSKAuthTokenProvider`."""

    def __init__(self, region: str | None, *, profile: str | None = None,
                 role_arn: str | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock=clock)
        self._signer = _signer()
        region = region or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
        if not region:
            raise KafkaSecurityError(
                f"{env('sasl_oauth_token_provider')}=aws-msk-iam needs "
                f"{env('sasl_oauth_aws_region')} (or AWS_REGION): the cluster's region")
        self.region = region
        self.profile = profile
        self.role_arn = role_arn

    def describe(self) -> str:
        via = (f" role {self.role_arn}" if self.role_arn
               else f" profile {self.profile}" if self.profile else "")
        return f"aws-msk-iam {self.region}{via}"

    def fetch(self) -> Token:
        started = self._clock()
        signer = self._signer
        try:
            if self.role_arn:
                value, expiry_ms = signer.generate_auth_token_from_role_arn(
                    self.region, self.role_arn)
            elif self.profile:
                value, expiry_ms = signer.generate_auth_token_from_profile(
                    self.region, self.profile)
            else:
                value, expiry_ms = signer.generate_auth_token(self.region)
        except (AttributeError, ValueError):
            # the signer dereferences missing credentials (None) or rejects empty ones
            raise TokenUnavailable(
                f"{self.describe()}: no AWS credentials found (environment, profile, web "
                "identity or instance role)", permanent=True) from None
        except Exception as exc:  # botocore: profile not found, STS errors, ...
            name = type(exc).__name__
            permanent = name in ("NoCredentialsError", "ProfileNotFound",
                                 "PartialCredentialsError")
            raise TokenUnavailable(f"{self.describe()}: cannot sign an MSK IAM token "
                                   f"({name}: {exc})", permanent=permanent) from None
        return Token(str(value), obtained_at=started, expires_at=float(expiry_ms) / 1000.0)
