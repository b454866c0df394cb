"""Admin-API clients of the identity providers the enforcer applies commands to.

One module per IdP (`keycloak`, `auth0`, `okta`), each an `IdpClient`
(`base.py`) built from its target settings, sharing the OAuth client-credentials
token cache and the retry/backoff/rate-limit code in `http.py`.
"""
