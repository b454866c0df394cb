"""Loading the policy TOML file (the I/O half of detectors.policy)."""

from __future__ import annotations

import tomllib
from pathlib import Path

from detectors.policy import DEFAULT_POLICY, Policy, PolicyError, policy_from_mapping


def load_policy(path: str | Path | None) -> Policy:
    """Read and validate a policy file; None means the built-in defaults."""
    if path is None or str(path) == "":
        return DEFAULT_POLICY
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(f"cannot read policy file {path}: {exc.strerror}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise PolicyError(f"policy file {path} is not valid TOML: {exc}") from None
    try:
        return policy_from_mapping(raw)
    except PolicyError as exc:
        raise PolicyError(f"policy file {path}: {exc}") from None
