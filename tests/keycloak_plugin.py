"""Pytest plugin: a real Keycloak server for tests marked ``keycloak``.

Why: the enforcer's end-to-end promise (a hijacked session is dead at the
IdP, a benign one is not) only means something against a real IdP. The
server comes from ``scripts/keycloak_local.py`` (Maven Central zip, cached).

* ``keycloak_url`` (session): ``SESSIONWARDEN_TEST_KEYCLOAK`` if set (a
  running server whose bootstrap admin is admin/admin), else one local
  server per session. It FAILS the requesting tests -- never skips -- when
  Keycloak cannot start, in CI and locally.
* The server takes 30-60 s to start, so it is started in a background
  thread as soon as collection shows a test needs it, and those tests are
  moved to the end of the run: the start-up overlaps the other tests.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

URL_ENV = "SESSIONWARDEN_TEST_KEYCLOAK"
START_TIMEOUT_ENV = "SESSIONWARDEN_KEYCLOAK_START_TIMEOUT"
_MODULE_NAME = "sessionwarden_keycloak_local"
_PATH = Path(__file__).resolve().parent.parent / "scripts" / "keycloak_local.py"


def load_keycloak_local() -> ModuleType:
    """Import ``scripts/keycloak_local.py`` by path (``scripts/`` is no package)."""
    module = sys.modules.get(_MODULE_NAME)
    if module is not None:
        return module
    spec = importlib.util.spec_from_file_location(_MODULE_NAME, _PATH)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {_PATH}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[_MODULE_NAME] = module
    spec.loader.exec_module(module)
    return module


class _Starter:
    """Launches one LocalKeycloak now; a thread waits for it; `result()` joins.

    The process is launched from the calling (main) thread: with
    die_with_parent the kernel signals the server when the thread that
    forked it exits, so a short-lived starter thread would kill it.
    """

    def __init__(self) -> None:
        self.server: Any = None
        self.url: str | None = None
        self.error: BaseException | None = None
        self.run_dir = Path(tempfile.mkdtemp(prefix="sessionwarden-keycloak-"))
        try:
            kl = load_keycloak_local()
            # die_with_parent: a killed pytest must not leave a JVM behind.
            self.server = kl.LocalKeycloak(self.run_dir, die_with_parent=True)
            self.server.launch()
        except BaseException as exc:  # reported by the fixture, never swallowed
            self.error = exc
        self._thread = threading.Thread(target=self._wait, name="keycloak-start", daemon=True)
        self._thread.start()

    def _wait(self) -> None:
        if self.error is not None:
            return
        try:
            self.url = self.server.wait_ready(
                timeout=float(os.environ.get(START_TIMEOUT_ENV, "240")))
        except BaseException as exc:  # reported by the fixture, never swallowed
            self.error = exc

    def result(self) -> str:
        self._thread.join()
        if self.error is not None or self.url is None:
            where = "in CI" if os.environ.get("CI", "").lower() in ("true", "1") else "locally"
            pytest.fail(f"could not start the local Keycloak server {where}: {self.error}\n"
                        f"(needs java 17+ and mvn for the first fetch; or point {URL_ENV} at "
                        "a running server; or deselect with -m 'not keycloak')", pytrace=False)
        return self.url

    def stop(self) -> None:
        self._thread.join()
        if self.server is not None:
            self.server.stop(keep=True)


_RUN: dict[str, _Starter] = {}
"""The session's starter, under "server" (a dict: no `global` statements)."""


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "keycloak: needs a real Keycloak server (started by scripts/keycloak_local.py)")


def _needs_keycloak(item: pytest.Item) -> bool:
    return "keycloak_url" in getattr(item, "fixturenames", ())


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark Keycloak tests first, so ``-m 'not keycloak'`` deselects them."""
    for item in items:
        if _needs_keycloak(item):
            item.add_marker(pytest.mark.keycloak)


@pytest.hookimpl(trylast=True)
def pytest_collection_finish(session: pytest.Session) -> None:
    """After deselection: move Keycloak tests last and start the server in the background."""
    items = session.items
    needing = [i for i in items if _needs_keycloak(i)]
    if not needing:
        return
    rest = [i for i in items if i not in needing]
    items[:] = rest + needing
    if not os.environ.get(URL_ENV, "").strip() and "server" not in _RUN:
        _RUN["server"] = _Starter()


def pytest_unconfigure(config: pytest.Config) -> None:
    starter = _RUN.pop("server", None)
    if starter is not None:
        starter.stop()
        shutil.rmtree(starter.run_dir, ignore_errors=True)


@pytest.fixture(scope="session")
def keycloak_url() -> Iterator[str]:
    """Base URL of the session's Keycloak (admin/admin bootstrap admin)."""
    external = os.environ.get(URL_ENV, "").strip()
    if external:
        yield external.rstrip("/")
        return
    if "server" not in _RUN:  # e.g. requested indirectly: start now
        _RUN["server"] = _Starter()
    yield _RUN["server"].result()
