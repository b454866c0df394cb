"""The demo's report in a real headless browser: Debian's Chromium driven by Playwright.

Checks what a person would: the page loads from disk with no console error
and no network request, every number it shows equals summary.json, and a
revoked session found with the search box opens its timeline. Without
Chromium the test skips on a workstation but fails in CI (`make browser`
installs it).
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from worker.cli import main

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "data" / "demo" / "events.jsonl"
CHROMIUM = os.environ.get("SESSIONWARDEN_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                  "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]

pytestmark = pytest.mark.browser


def chromium_or_fail() -> str:
    if Path(CHROMIUM).exists() or shutil.which(CHROMIUM):
        return CHROMIUM
    message = f"Chromium not found at {CHROMIUM}: run `make browser` (apt-get install chromium)"
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def demo_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("report") / "demo"
    assert main(["replay", str(DEMO), "--out", str(out), "--report", "--json"]) == 0
    return out


@pytest.fixture
def page(demo_report: Path) -> Iterator[tuple[Any, list[str], list[str]]]:
    executable = chromium_or_fail()
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - after the check

    problems: list[str] = []
    requests: list[str] = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS)
        try:
            view = browser.new_page(viewport={"width": 1280, "height": 900})
            view.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
                    if m.type in ("error", "warning") else None)
            view.on("pageerror", lambda e: problems.append(f"page error: {e}"))
            view.on("request", lambda r: requests.append(r.url)
                    if not r.url.startswith("file://") else None)
            view.goto((demo_report / "report.html").as_uri())
            view.wait_for_selector("#sessions tbody tr")
            yield view, problems, requests
        finally:
            browser.close()


def number(text: str) -> int:
    return int(text.replace(",", "").strip())


def test_report_loads_cleanly_and_its_numbers_equal_the_summary(
        page: tuple[Any, list[str], list[str]], demo_report: Path) -> None:
    view, problems, requests = page
    summary = orjson.loads((demo_report / "summary.json").read_bytes())
    shown = {el.get_attribute("data-summary"): number(el.inner_text())
             for el in view.query_selector_all("[data-summary]")}
    expected = {key: summary[key] for key in shown if "." not in key}
    expected.update({key: summary[key.split(".")[0]].get(key.split(".")[1], 0)
                     for key in shown if "." in key})
    assert shown == expected
    revokes = [c for line in (demo_report / "commands.jsonl").read_bytes().splitlines()
               if (c := orjson.loads(line))["type"] == "revoke_session"]
    assert shown["events_read"] == 3000 and shown["commands_by_type.revoke_session"] == len(revokes)
    findings = {el.get_attribute("data-finding"): number(el.inner_text())
                for el in view.query_selector_all("[data-finding]")}
    assert findings == summary["findings_by_detector"]
    dead = {el.get_attribute("data-dead"): number(el.inner_text())
            for el in view.query_selector_all("[data-dead]")}
    assert dead == summary["dead_by_reason"]
    acted = {c["session_id"] for c in revokes}
    revoked_rows = view.locator("#sessions tbody tr", has_text="revoked")
    assert revoked_rows.count() == len(acted) > 0
    assert view.inner_text("#policy-version") == summary["policy_version"]
    assert problems == [] and requests == []


def test_a_revoked_session_found_by_search_opens_its_timeline(
        page: tuple[Any, list[str], list[str]], demo_report: Path) -> None:
    view, problems, requests = page
    revoke = next(c for line in (demo_report / "commands.jsonl").read_bytes().splitlines()
                  if (c := orjson.loads(line))["type"] == "revoke_session")
    sid, cause = revoke["session_id"], revoke["cause_event_id"]
    view.fill("#search", sid)
    rows = view.locator("#sessions tbody tr")
    assert rows.count() == 1
    assert view.inner_text("#shown").startswith("1 of ")
    rows.first.click()
    timeline = view.locator("#timeline")
    timeline.wait_for(state="visible")
    assert view.inner_text("#timeline-sid") == sid
    events = view.locator("#timeline-rows tr.ev")
    session_events = sum(1 for line in DEMO.read_bytes().splitlines()
                         if f'"id":"{sid}"'.encode() in line)
    assert 0 < events.count() <= session_events
    assert "first event: sets the baseline" in events.first.inner_text()
    revoking = view.locator("#timeline-rows tr.ev", has_text=cause)
    assert revoking.count() == 1
    assert "revoke_session" in revoking.inner_text()
    assert revoke["reason"] in revoking.inner_text()
    revoking.locator("details.why summary").click()
    explanation = revoking.locator("details.why").inner_text()
    assert revoke["policy_version"] in explanation and "initial_ip" in explanation
    assert re.search(r"AS\d+", revoking.inner_text())
    assert view.evaluate("location.hash") == f"#session={sid}"
    assert problems == [] and requests == []
