"""`sessionwarden enforce`: apply session commands at the IdP, once, with safety rails.

Modules: `rails` (the policy's `[enforcement]` section), `targets` (which IdP
serves which tenant, with credentials), `commands` (decoding records),
`state` (the durable intent/result/held log), `breaker` and `ratelimit`
(the rails), `results`, `metrics`, `service` (the consumer loop) and
`operator` (release/discard of held commands). Design: docs/enforcement.md.
"""
