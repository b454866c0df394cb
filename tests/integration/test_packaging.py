"""The built wheel, installed outside the source tree (issue 8, item 12).

Why: default database paths used to point into the checkout, so an installed
package failed far from home -- or, worse, could run on the bundled test
databases in production. Outside a checkout the databases must be named; the
licence travels in the wheel; `--version` answers.
"""

from __future__ import annotations

import os
import site
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
MMDB = REPO / "data" / "mmdb"

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    """The wheel installed into a bare directory, and an environment that imports only it."""
    tmp = tmp_path_factory.mktemp("wheel")
    subprocess.run([sys.executable, "-m", "pip", "wheel", str(REPO), "--no-deps", "-q",
                    "-w", str(tmp / "dist")], check=True, capture_output=True, timeout=300)
    [wheel] = (tmp / "dist").glob("sessionwarden-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert any(n.endswith("licenses/LICENSE") for n in names)
    assert not any(n.startswith("data/") for n in names), "no test data in the package"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(tmp / "site"), str(wheel)], check=True, capture_output=True, timeout=300)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SESSIONWARDEN_", "PYTHON"))}
    # -S below: no .pth files, so the editable install of the checkout is invisible;
    # dependencies come from this interpreter's site-packages.
    env["PYTHONPATH"] = os.pathsep.join([str(tmp / "site"), *site.getsitepackages()])
    return tmp, env


def run(installed: tuple[Path, dict[str, str]], *args: str,
        **env: str) -> subprocess.CompletedProcess[str]:
    tmp, base = installed
    return subprocess.run([sys.executable, "-S", "-m", "worker", *args], cwd=tmp,
                          env={**base, **env}, capture_output=True, text=True, timeout=120,
                          check=False)


def test_installed_package_needs_named_databases(installed: tuple[Path, dict[str, str]]) -> None:
    tmp, _env = installed
    where = run(installed, "--version")
    assert where.returncode == 0 and where.stdout.startswith("sessionwarden ")
    src = tmp / "in.jsonl"
    src.write_text('{"event_id":"e1","type":"login","occurred_at":"2026-11-01T00:00:00Z",'
                   '"session":{"id":"s"},"request":{"ip":"89.160.20.112"}}\n')
    proc = run(installed, "replay", str(src), "--out", str(tmp / "o"))
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "SESSIONWARDEN_CITY_DB" in proc.stderr and "source checkout" in proc.stderr
    named = run(installed, "replay", str(src), "--out", str(tmp / "o"),
                SESSIONWARDEN_CITY_DB=str(MMDB / "GeoIP2-City-Test.mmdb"),
                SESSIONWARDEN_ASN_DB=str(MMDB / "GeoLite2-ASN-Test.mmdb"),
                SESSIONWARDEN_ANONYMOUS_DB="", SESSIONWARDEN_PYASN_DB="",
                SESSIONWARDEN_NETCLASS_DIR=str(REPO / "data" / "netclass"),
                SESSIONWARDEN_SIGNALS_ENABLED="false")
    assert named.returncode == 0, named.stderr
    assert "WARNING: using the bundled TEST databases" in named.stderr, \
        "a MaxMind test database is flagged wherever it lies"
    assert (tmp / "o" / "summary.json").is_file()
