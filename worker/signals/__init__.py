"""CAEP Security Event Tokens for relying parties: `session-signals`.

- `caep`: the SET claims (RFC 8417 profiled by OpenID SSF 1.0) of the CAEP
  1.0 events a decision causes: `session-revoked` for a revoke,
  `risk-level-change` for a step-up or an alert-only risk finding.
- `keys`: the RS256 signing key from configuration (or an ephemeral one for
  replay), its `kid` and the public JWKS.
- `tokens`: signs the claims (joserfc) into the records of `session-signals`.
- `push`: RFC 8935 push delivery of those records to an SSF receiver.

See docs/outputs.md for the record shapes and the decisions behind them.
"""
