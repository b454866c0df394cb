"""`sessionwarden report`: what the page holds, timelines, fallbacks, safety, atomic writes."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest

from worker.cli import main
from worker.report.render import build_report

UA = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) " \
     "Chrome/130.0.0.0 Safari/537.36"
MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like " \
      "Gecko) Version/17.1 Safari/605.1.15"


def native(n: int, session: str, ip: str, kind: str = "login", ua: str = UA,
           user: str = "u1") -> bytes:
    return orjson.dumps({"event_id": f"e{n}", "type": kind,
                         "occurred_at": 1795773600000 + n * 60_000, "tenant": "acme",
                         "session": {"id": session}, "user": {"id": user},
                         "request": {"ip": ip, "user_agent": ua}})


def replayed(tmp_path: Path, lines: list[bytes], *extra: str) -> Path:
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"\n".join(lines) + b"\n")
    out = tmp_path / "out"
    assert main(["replay", str(src), "--out", str(out), "--json", *extra]) == 0
    return out


def page_data(html: str) -> dict:
    match = re.search(r'<script type="application/json" id="report-data">(.*?)</script>',
                      html, re.S)
    assert match is not None
    return orjson.loads(match.group(1))


@pytest.fixture
def story(tmp_path: Path) -> Path:
    """s1: login in Sweden, then a US network (revoked); s2: quiet; s3: new device."""
    return replayed(tmp_path, [
        native(1, "s1", "89.160.20.112"),
        native(2, "s1", "89.160.20.112", "silent_auth"),
        native(3, "s1", "216.160.83.56", "silent_auth"),
        native(4, "s1", "216.160.83.56", "token_refresh"),
        native(5, "s2", "89.160.20.112", user="u2"),
        native(6, "s3", "89.160.20.112", user="u3"),
        native(7, "s3", "89.160.20.112", "silent_auth", ua=MAC, user="u3"),
        b"{broken",
    ], "--report")


def test_report_shows_the_summary_numbers_and_the_revoked_sessions(story: Path) -> None:
    summary = orjson.loads((story / "summary.json").read_bytes())
    html = (story / "report.html").read_text()
    shown = dict(re.findall(r'data-summary="([^"]+)">([\d,]+)<', html))
    assert shown["events_read"] == f"{summary['events_read']:,}"
    assert shown["alerts"] == str(summary["alerts"])
    assert shown["commands_by_type.revoke_session"] == "2"
    assert shown["dead_letters"] == "1"
    assert summary["policy_version"] in html
    data = page_data(html)
    by_sid = {s["sid"]: s for s in data["sessions"]}
    assert set(by_sid) == {"s1", "s3"}  # s2 was never acted on
    assert by_sid["s1"]["outcome"] == "revoked" and "asn_binding" in by_sid["s1"]["detectors"]
    assert by_sid["s3"]["outcome"] == "revoked" and "ua_drift" in by_sid["s3"]["detectors"]
    assert "unknown: not JSON" in html  # dead letters grouped by reason, with the example
    assert "{broken" in html


def test_timeline_holds_every_event_with_the_baseline_of_the_moment(story: Path) -> None:
    rows = page_data((story / "report.html").read_text())["timelines"]["s1"]
    assert [r["id"] for r in rows] == ["e1", "e2", "e3", "e4"]
    first, _, moved, after = rows
    assert first["base"] is None and first["cc"] == "SE" and first["asn"] == 29518
    assert moved["base"]["initial_ip"] == "89.160.20.112"
    assert moved["base"]["last_asn"] == 29518 and moved["asn"] == 209
    assert [s["detector"] for s in moved["signals"]][:1] == ["asn_binding"]
    assert moved["commands"][0]["type"] == "revoke_session"
    assert moved["why"]["baseline"]["initial_asn"] == 29518  # the audit explanation
    assert after["note"] == "session already revoked" and after["base"]["revoked"] is True


def test_without_the_input_timelines_come_from_the_alerts_and_say_so(story: Path,
                                                                     tmp_path: Path) -> None:
    (tmp_path / "in.jsonl").unlink()
    built = build_report(story)
    assert built.timeline_source == "alerts"
    assert built.note is not None and "cannot be read again" in built.note
    html = built.path.read_text()
    assert "timelines show only the events that raised alerts" in html
    rows = page_data(html)["timelines"]["s1"]
    assert [r["id"] for r in rows] == ["e3"]


def test_a_changed_policy_is_not_used_for_timelines(tmp_path: Path) -> None:
    policy = tmp_path / "p.toml"
    policy.write_text('[detectors.ip_binding]\naction = "alert"\n')
    out = replayed(tmp_path, [native(1, "s1", "89.160.20.112"),
                              native(2, "s1", "216.160.83.56", "silent_auth")],
                   "--policy", str(policy))
    policy.write_text('[detectors.ip_binding]\naction = "revoke"\n')
    built = build_report(out)
    assert built.timeline_source == "alerts" and "policy file now has version" in str(built.note)


def test_report_is_deterministic_and_safe_against_markup_in_the_data(tmp_path: Path) -> None:
    evil = "</script><script>alert(1)</script>"
    out = replayed(tmp_path, [native(1, "s1", "89.160.20.112", user=evil),
                              native(2, "s1", "216.160.83.56", "silent_auth", user=evil)])
    first = build_report(out).path.read_bytes()
    assert build_report(out).path.read_bytes() == first
    assert b"<script>alert(1)" not in first
    assert page_data(first.decode())["sessions"][0]["user"] == evil
    assert not list(out.glob(".*tmp*"))


def test_report_of_a_directory_without_outputs_is_exit_2(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]
                                                         ) -> None:
    assert main(["report", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "not a replay output directory" in err


def test_report_command_and_a_new_replay_replaces_the_report(story: Path,
                                                             capsys: pytest.CaptureFixture[str]
                                                             ) -> None:
    (story / "report.html").unlink()
    assert main(["report", str(story)]) == 0
    assert capsys.readouterr().out.strip() == str(story / "report.html")
    src = story.parent / "in.jsonl"
    assert main(["replay", str(src), "--out", str(story), "--json"]) == 0
    assert not (story / "report.html").exists()  # a stale report never describes new outputs


def test_skipping_lines_by_their_bytes_changes_no_timeline(tmp_path: Path) -> None:
    """The pre-decode filter (worker.report.timeline.prefilter) only skips unrelated lines."""
    from worker.report.manifest import read_manifest  # noqa: PLC0415
    from worker.report.timeline import prefilter, rerun  # noqa: PLC0415

    demo = Path(__file__).resolve().parents[2] / "data" / "demo" / "events.jsonl"
    escaped = native(9000, "s-\u00e9t\u00e9", "89.160.20.112").replace(
        "s-\u00e9t\u00e9".encode(), b"s-\\u00e9t\\u00e9")
    moved = native(9001, "s-\u00e9t\u00e9", "216.160.83.56", "silent_auth")
    src = tmp_path / "in.jsonl"
    src.write_bytes(demo.read_bytes() + escaped + b"\n" + moved + b"\n")
    out = tmp_path / "out"
    assert main(["replay", str(src), "--out", str(out), "--json"]) == 0
    manifest = read_manifest(out / "run.json")
    assert manifest is not None
    revoked = {orjson.loads(line)["session_id"] for line in
               (out / "commands.jsonl").read_bytes().splitlines()
               if b'"revoke_session"' in line}
    users = {("acme", "u1")}
    assert "s-\u00e9t\u00e9" in revoked
    fast = rerun(manifest, None, revoked, users)
    slow = rerun(manifest, None, revoked, users, skip_lines=False)
    assert fast.rows == slow.rows and fast.acting_ids == slow.acting_ids
    assert len(fast.rows["s-\u00e9t\u00e9"]) == 2  # the escaped first event was not skipped
    may_concern = prefilter({"s-1"}, set())
    assert may_concern is not None
    assert not may_concern(b'{"session":{"id":"s-10"}}')
    assert may_concern(b'{"session" : {"id" : "s-1"}}')
    assert may_concern(b"12:00:00 INFO type=LOGIN, sessionId=s-2")  # text: always decoded
    assert prefilter({"123"}, set()) is None  # a stringified number may be spelt otherwise
