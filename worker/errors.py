"""The one exception type that means "this command could not run" (exit status 2).

Commands raise it with a single line that names the problem; `worker.cli.main`
prints that line and exits 2, never a traceback. Configuration errors
(policy, settings, databases) are translated into it at the same place.
"""

from __future__ import annotations

from pydantic import ValidationError


class CouldNotRun(Exception):
    """A run could not start or had to stop: bad input path, bad config, no broker."""


def settings_error(exc: ValidationError) -> CouldNotRun:
    """One line naming each bad SESSIONWARDEN_* variable (values of secrets hidden)."""
    parts = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err["loc"])
        variable = f"SESSIONWARDEN_{name.upper()}"
        shown = "***" if any(w in name for w in ("password", "secret", "token", "key")) \
            else repr(err.get("input"))[:80]
        message = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{variable}={shown}: {message}")
    return CouldNotRun("invalid setting " + "; ".join(parts))
