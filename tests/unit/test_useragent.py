"""User agents: raw headers and Auth0's parsed summaries become comparable Agents."""

from __future__ import annotations

import pytest

from tests.factories import CHROME_120_MAC, FIREFOX_WIN
from worker.useragent import parse_agent


def test_raw_header_and_auth0_summary_agree() -> None:
    raw = parse_agent(CHROME_120_MAC)
    summary = parse_agent("Chrome 120.0.0 / Mac OS X 10.15.7")
    assert (raw.family, raw.major, raw.os_family) == ("Chrome", 120, "Mac OS X")
    assert (summary.family, summary.version, summary.os_family) == (
        raw.family, raw.version, raw.os_family)


@pytest.mark.parametrize(("text", "family", "major", "os"), [
    ("Firefox 119.0.0 / Windows 10.0.0", "Firefox", 119, "Windows"),
    ("Mobile Safari 17.1 / iOS 17.1.2", "Mobile Safari", 17, "iOS"),
    ("Other 0.0.0 / Other 0.0.0", "Other", 0, "Other"),
    ("Chrome Mobile 119.0.6045 / Android 10", "Chrome Mobile", 119, "Android"),
    (FIREFOX_WIN, "Firefox", 119, "Windows"),
    ("curl/8.1.2", "curl", 8, "Other"),
    ("", "Other", None, "Other"),
])
def test_forms(text: str, family: str, major: int | None, os: str) -> None:
    agent = parse_agent(text)
    assert (agent.family, agent.major, agent.os_family) == (family, major, os)


def test_raw_headers_containing_slashes_are_not_taken_for_summaries() -> None:
    agent = parse_agent("Mozilla/5.0 (X11; Linux x86_64) Gecko / Firefox/120.0")
    assert agent.family == "Firefox"
