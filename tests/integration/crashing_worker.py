"""`sessionwarden worker` that dies at the worst moment, for the crash tests.

Why: a SIGKILL from outside lands wherever it lands; this one exits (like a
SIGKILL: no flush, no commit, no leave-group) right after the Nth batch's
outputs were delivered and before its baselines are stored -- exactly the
window in which storing state first would lose commands.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from worker.cli import main
from worker.kafka import app as worker_app


def install(after_batches: int) -> None:
    original = worker_app.BatchRunner._store
    calls = 0

    def store(self: worker_app.BatchRunner, *args: Any, **kwargs: Any) -> None:
        nonlocal calls
        calls += 1
        if calls >= after_batches:
            os._exit(137)
        original(self, *args, **kwargs)

    worker_app.BatchRunner._store = store  # type: ignore[method-assign]


if __name__ == "__main__":
    install(int(os.environ["CRASH_AFTER_BATCHES"]))
    sys.exit(main(["worker"]))
