"""User-agent parsing with ua-parser, for raw headers and Auth0 summaries.

Auth0 log events often carry a pre-parsed summary such as
"Chrome 120.0.0 / Mac OS X 10.15.7" instead of the raw header; both forms
must compare equal for the same device, so both become the same `Agent`.
Results are cached: a handful of user agents make up most of the traffic.
"""

from __future__ import annotations

import re
from functools import lru_cache

import ua_parser

from detectors.model import Agent

AUTOMATION_FAMILIES = frozenset({
    "curl", "Wget", "Python Requests", "Python-urllib", "Go-http-client", "okhttp",
    "HeadlessChrome", "PhantomJS", "PostmanRuntime", "axios", "Java", "Apache-HttpClient",
    "Scrapy", "libwww-perl", "Jakarta Commons-HttpClient", "node-fetch", "Electron Headless",
})
"""ua-parser families of HTTP libraries, command-line tools and headless browsers."""
_AUTOMATION = re.compile(
    r"^(?:curl|wget|python-requests|python-urllib3?|python-httpx|aiohttp|httpx|httpie|"
    r"go-http-client|okhttp|java|apache-httpclient|node-fetch|undici|axios|got|"
    r"postmanruntime|insomnia|libwww-perl|lwp-|ruby|faraday|guzzlehttp|powershell|"
    r"scrapy|restsharp|dart|reqwest|hackney|unirest)\b|headlesschrome|phantomjs|"
    r"selenium|puppeteer|playwright|slimerjs",
    re.IGNORECASE)
"""Raw user agents of the same, for the clients ua-parser does not name."""


def is_automation(raw: str, family: str, device: str | None) -> bool:
    """An HTTP library, CLI tool, headless browser or crawler rather than a person's browser."""
    return (family in AUTOMATION_FAMILIES or device == "Spider"
            or _AUTOMATION.search(raw) is not None)


_SUMMARY = re.compile(
    r"(?P<family>[^/]+?)(?: (?P<version>\d+(?:\.\d+){0,3}))? / "
    r"(?P<os>[^/]+?)(?: (?P<os_version>\d+(?:\.\d+){0,3}))?"
)


def _int(value: str | None) -> int | None:
    return int(value) if value is not None and value.isascii() and value.isdigit() else None


def _from_summary(raw: str) -> Agent | None:
    m = _SUMMARY.fullmatch(raw.strip())
    if m is None or "(" in raw:
        return None
    parts: list[str | None] = [*(m.group("version") or "").split("."), None, None, None]
    return Agent(
        raw=raw,
        family=m.group("family").strip(),
        major=_int(parts[0]),
        minor=_int(parts[1]),
        patch=_int(parts[2]),
        os_family=m.group("os").strip(),
        os_version=m.group("os_version"),
    )


@lru_cache(maxsize=65536)
def parse_agent(raw: str) -> Agent:
    """Parse a raw User-Agent header or an Auth0 summary string."""
    summary = _from_summary(raw) if " / " in raw else None
    if summary is not None:
        return summary
    result = ua_parser.parse(raw)
    ua, os_, device = result.user_agent, result.os, result.device
    os_version = ".".join(p for p in (os_.major, os_.minor, os_.patch) if p) if os_ else None
    family = ua.family if ua else "Other"
    device_family = device.family if device else None
    return Agent(
        raw=raw,
        family=family,
        major=_int(ua.major) if ua else None,
        minor=_int(ua.minor) if ua else None,
        patch=_int(ua.patch) if ua else None,
        os_family=os_.family if os_ else "Other",
        os_version=os_version or None,
        device=device_family,
        automation=is_automation(raw, family, device_family),
    )
