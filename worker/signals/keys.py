"""The key that signs Security Event Tokens, and the JWKS that publishes it.

RS256 (RSASSA-PKCS1-v1_5 with SHA-256, RFC 7518 section 3.3), because:

- its signatures are deterministic: the same key and claims give the same
  bytes, so `sessionwarden replay` and the worker publish byte-identical
  SETs, and a re-delivered event re-publishes the identical token;
- it is the one JWS algorithm every OpenID/SSF receiver must accept (it is
  mandatory-to-implement for OpenID Connect ID tokens).

ES256 would give shorter tokens, but ECDSA signatures are randomised unless
the signer implements RFC 6979, which the JOSE libraries here do not expose.

The private key comes from configuration, as a PEM file
(`SESSIONWARDEN_SIGNING_KEY_FILE`) or as PEM text in a secret
(`SESSIONWARDEN_SIGNING_KEY`, a SecretStr: never logged or shown). The `kid`
is the RFC 7638 thumbprint unless configured. Replay without a configured
key signs with an ephemeral key generated for that run and publishes its
public half in `jwks.json`; the worker never does (see `Signer.from_settings`).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from joserfc.errors import JoseError, SecurityWarning
from joserfc.jwk import RSAKey

ALGORITHM = "RS256"
MIN_BITS = 2048


class SigningKeyError(ValueError):
    """The configured signing key cannot be used (message safe to print: no key material)."""


@dataclass(frozen=True, slots=True)
class SigningKey:
    """An RSA private key with its key id."""

    key: RSAKey
    kid: str
    ephemeral: bool = False

    @classmethod
    def from_pem(cls, pem: bytes, kid: str | None = None, source: str = "key") -> SigningKey:
        try:
            with warnings.catch_warnings():  # a short key is refused below, with our message
                warnings.simplefilter("ignore", SecurityWarning)
                key = RSAKey.import_key(pem)
        except (JoseError, ValueError, TypeError) as exc:
            raise SigningKeyError(f"signing {source} is not an RSA private key in PEM "
                                  f"({type(exc).__name__})") from None
        if not key.is_private:
            raise SigningKeyError(f"signing {source} is a public key; RS256 needs the private key")
        bits = key.raw_value.key_size
        if bits < MIN_BITS:
            raise SigningKeyError(f"signing {source} has {bits} bits; RS256 needs >= {MIN_BITS}")
        return cls(key, kid or key.thumbprint())

    @classmethod
    def from_file(cls, path: Path, kid: str | None = None) -> SigningKey:
        try:
            pem = path.read_bytes()
        except OSError as exc:
            raise SigningKeyError(f"cannot read signing key file {path}: {exc.strerror}") \
                from None
        return cls.from_pem(pem, kid, source=f"key file {path}")

    @classmethod
    def generate(cls) -> SigningKey:
        """A fresh key for one replay run; its public half goes into jwks.json."""
        key = RSAKey.generate_key(MIN_BITS)
        return cls(key, key.thumbprint(), ephemeral=True)

    def public_jwk(self) -> dict[str, Any]:
        """The public JWK, with `kid`, `use` and `alg` (RFC 7517)."""
        jwk: dict[str, Any] = dict(self.key.as_dict(private=False))
        return {"kty": jwk["kty"], "kid": self.kid, "use": "sig", "alg": ALGORITHM,
                "n": jwk["n"], "e": jwk["e"]}

    def __repr__(self) -> str:  # never the key material
        return f"SigningKey(kid={self.kid!r}, ephemeral={self.ephemeral})"


def jwks(keys: list[SigningKey]) -> dict[str, Any]:
    """A JWK Set of the public halves (RFC 7517 section 5)."""
    return {"keys": [k.public_jwk() for k in keys]}
