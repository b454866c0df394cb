"""Authentication to secured Kafka clusters: TLS, mTLS, SASL and OAUTHBEARER tokens.

Managed services only accept authenticated clients: Confluent Cloud (API
keys over SASL PLAIN, or OAuth), Amazon MSK (IAM via OAUTHBEARER, SCRAM,
mTLS) and Azure Event Hubs (OAuth with Entra ID, or a connection string over
SASL PLAIN). `worker.kafka.client` turns `Settings` into client options with
the pieces here, so the worker, `produce` and topic creation authenticate
identically:

* `config.check_security` -- the combination of settings is coherent (one
  clear line naming the variables otherwise), before anything connects;
* `tls.ssl_context` -- trust store, client certificate, key password;
* `providers.token_provider` -- the OAUTHBEARER token provider: `oidc`
  (`oidc.ClientCredentialsTokenProvider`), `aws-msk-iam`
  (`msk_iam.MskIamTokenProvider`) or a user's `module:attribute`.

`worker.kafka.preflight.check_login` then logs in once with those options in
every start-up connection attempt (`worker.kafka.startup.connect_admin`), so a
rejected certificate, password or token stops the run with one line instead
of being retried as an unreachable broker.
"""

from worker.kafka.auth.config import KafkaSecurityError, check_security

__all__ = ["KafkaSecurityError", "check_security"]
