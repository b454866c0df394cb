"""`run.json`: what a replay was made of, so its report can be rebuilt later.

The report shows the policy and data versions, and re-runs the input for the
acted-on sessions' timelines; both need to know the inputs and the decision
settings of the run. Written by replay beside `summary.json`. No secrets: only
paths, the input format and the start-up facts (versions, databases).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from worker.codec import loads
from worker.inputs import InputFile
from worker.settings import DecisionSettings

MANIFEST_VERSION = 1
_PATH_SETTINGS = ("policy_file", "city_db", "asn_db", "anonymous_db", "pyasn_db",
                  "netclass_dir", "isp_db", "connection_type_db")


def _absolute(value: object) -> str | None:
    """A path setting made absolute ('' stays '': it means "disabled")."""
    if value is None:
        return None
    text = str(value)
    return str(Path(text).resolve()) if text.strip() else text


def make_manifest(settings: DecisionSettings, inputs: Sequence[InputFile],
                  facts: dict[str, Any]) -> dict[str, Any]:
    """The manifest of a run about to start (deterministic: no times)."""
    return {
        "manifest_version": MANIFEST_VERSION,
        "inputs": [{"name": i.name, "path": str(i.path.resolve()) if i.path else None}
                   for i in inputs],
        "settings": {"input_format": settings.input_format,
                     **{k: _absolute(getattr(settings, k)) for k in _PATH_SETTINGS}},
        "facts": facts,
    }


def read_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest of an output directory, or None when absent or unreadable."""
    try:
        value = loads(path.read_bytes())
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


def settings_of(manifest: dict[str, Any]) -> DecisionSettings:
    """The decision settings of the recorded run (signals off: the report needs none)."""
    recorded = manifest.get("settings") or {}
    values = {k: v for k, v in recorded.items()
              if k in _PATH_SETTINGS or k == "input_format"}
    return DecisionSettings(**values, signals_enabled=False)
