"""`sessionwarden worker` that dies at a chosen moment, for the crash tests.

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


def install_after_state() -> None:
    """Die after the first batch's outputs AND baselines are durable, before the commit.

    The other crash window: every event of the batch is in the stored
    baselines, none is committed, so all of them are re-delivered.
    """
    original = worker_app.BatchRunner.finish

    async def finish(self: worker_app.BatchRunner, *args: Any, **kwargs: Any) -> None:
        await original(self, *args, **kwargs)  # the changelog records are delivered
        os._exit(137)

    worker_app.BatchRunner.finish = finish  # type: ignore[method-assign]


if __name__ == "__main__":
    if os.environ.get("CRASH_AFTER_STATE"):
        install_after_state()
    else:
        install(int(os.environ["CRASH_AFTER_BATCHES"]))
    sys.exit(main(["worker"]))
