"""What a run is made of: versions, policy version and enrichment databases.

Every command logs this once at start-up (replay on stderr, the worker in its
JSON log), so an operator reading a decision can tell which code, policy and
data made it -- and sees at once when the bundled *test* databases are in use.
"""

from __future__ import annotations

import platform
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from detectors import Policy
from worker.enrich import Enricher

_LIBRARIES = ("faust-streaming", "aiokafka", "geoip2", "pyasn", "orjson")


def package_version(name: str = "sessionwarden") -> str:
    try:
        return version(name)
    except PackageNotFoundError:  # a source tree that was never installed
        return "0+unknown"


def run_facts(policy: Policy, enricher: Enricher, *, libraries: bool = False) -> dict[str, Any]:
    """The start-up facts: versions, policy version, databases with their build dates."""
    facts: dict[str, Any] = {"version": package_version(),
                             "python": platform.python_version(),
                             "policy_version": policy.version,
                             "netclass_version": enricher.netclass.version
                             if enricher.netclass is not None else None,
                             "databases": [d.as_dict() for d in enricher.databases()]}
    if libraries:
        facts["libraries"] = {name: package_version(name) for name in _LIBRARIES}
    return facts


def startup_line(facts: dict[str, Any]) -> str:
    """The facts as one human line."""
    dbs = ", ".join(f"{d['setting'].removesuffix('_db')}={d['path']} ({d['type']}, built "
                    f"{d['built']}{', TEST DATA' if d['test_data'] else ''})"
                    for d in facts["databases"]) or "none"
    return (f"sessionwarden {facts['version']} (python {facts['python']}); policy "
            f"{facts['policy_version']}; network classes {facts.get('netclass_version')}; "
            f"databases: {dbs}")


def test_data_warning(facts: dict[str, Any]) -> str | None:
    """A loud line when any database is a bundled test copy (synthetic data)."""
    test = [d["setting"] for d in facts["databases"] if d["test_data"]]
    if not test:
        return None
    names = ", ".join(f"SESSIONWARDEN_{t.upper()}" for t in test)
    return (f"WARNING: using the bundled TEST databases ({names}): synthetic data, not real "
            "geolocation or ASNs; point these settings at real GeoLite2/GeoIP2 files in "
            "production")
