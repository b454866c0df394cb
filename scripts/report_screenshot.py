"""Screenshot of the demo report for the docs (docs/report.png), in Debian's Chromium.

    .venv/bin/python scripts/report_screenshot.py [OUT_DIR] [--png docs/report.png]

OUT_DIR is a replay directory with report.html (default out/demo, from
`make run`). The shot shows the headline, the acted-on sessions and the
timeline of the first revoked session, in a 1280-pixel-wide window.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", nargs="?", default="out/demo", type=Path)
    parser.add_argument("--png", default=Path("docs/report.png"), type=Path)
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright  # noqa: PLC0415

    report = (args.out_dir / "report.html").resolve()
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        page = browser.new_page(viewport={"width": 1280, "height": 1000})
        page.goto(report.as_uri())
        page.wait_for_selector("#sessions tbody tr")
        # Headline and charts, then the first revoked session opened below the table.
        page.evaluate("""() => {
            for (const id of ['tops', 'dead', 'versions']) {
                document.getElementById(id).style.display = 'none';
            }
            document.querySelector('.tablewrap').style.maxHeight = '210px';
        }""")
        # A revoked session with a short history, so its revoke fits in the picture.
        sid = page.evaluate("""() => {
            const data = JSON.parse(document.getElementById('report-data').textContent);
            const fits = data.sessions.filter(s => s.outcome === 'revoked'
                && (data.timelines[s.sid] || []).length >= 3
                && data.timelines[s.sid].length <= 4);
            return (fits[0] || data.sessions[0]).sid;
        }""")
        page.fill("#search", "")
        page.locator(f'#sessions tbody tr[data-sid="{sid}"]').click()
        page.locator("#timeline").wait_for(state="visible")
        page.locator("#timeline-rows details.why summary").last.click()
        page.evaluate("window.scrollTo(0, 0)")
        height = min(page.evaluate("document.body.scrollHeight"), 2200)
        page.screenshot(path=str(args.png), clip={"x": 0, "y": 0, "width": 1280,
                                                   "height": height}, full_page=True)
        browser.close()
    print(f"{args.png} ({args.png.stat().st_size / 1024:.0f} KB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
