"""The replay report: one self-contained HTML page about a replay's outputs.

People decide on a policy by reading what it did: which sessions it revoked
and why, what those sessions looked like, what a policy change would do. The
report reads a `replay --out` directory (`summary.json`, the JSON Lines
outputs, `run.json`, and `diff.json` when `sessionwarden diff` wrote one),
re-runs the pipeline over the input for the acted-on sessions only to show
their timelines, and writes `report.html`: no network access, no external
assets, aggregated and capped so that a 1M-event replay stays usable.

Modules: `outputs` (streaming aggregation of the output files), `timeline`
(per-session event history), `diff` (policy backtesting), `charts` (inline
SVG), `render` (the page), `manifest` (what a run was made of).
"""

from __future__ import annotations

from worker.replay import RUN_FILE

REPORT_FILE = "report.html"
DIFF_FILE = "diff.json"

__all__ = ["DIFF_FILE", "REPORT_FILE", "RUN_FILE"]
