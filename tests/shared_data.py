"""Where the steering repository's shared reference data is, for tests that read it.

Why: some reference data (the compiled OCSF schema, Panther's rule tests, a
second set of real IdP samples) must not be copied into this repository. It
lives in the shared folder beside the checkout (`../shared`), or at
`/work/shared` when the checkout is a clean clone elsewhere (CI), or where
`SESSIONWARDEN_SHARED_DIR` points.

In CI (`CI=true`) a missing folder fails the test that needs it; elsewhere it
skips with a message saying where the data is expected.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ENV = "SESSIONWARDEN_SHARED_DIR"
_REPO = Path(__file__).resolve().parent.parent
_CANDIDATES = (_REPO.parent / "shared", Path("/work/shared"))


def in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def shared_dir() -> Path | None:
    """The shared folder, or None when none of the known places has it."""
    configured = os.environ.get(ENV, "").strip()
    candidates = (Path(configured),) if configured else _CANDIDATES
    return next((p for p in candidates if p.is_dir()), None)


def shared_path(*parts: str) -> Path:
    """A path inside the shared folder; fails in CI, skips elsewhere, when it is missing."""
    base = shared_dir()
    path = base.joinpath(*parts) if base is not None else None
    if path is not None and path.exists():
        return path
    where = " or ".join(str(p.joinpath(*parts)) for p in _CANDIDATES)
    message = f"shared reference data {'/'.join(parts)} not found (expected at {where}, " \
              f"or set {ENV})"
    if in_ci():
        pytest.fail(message, pytrace=False)
    pytest.skip(message)
