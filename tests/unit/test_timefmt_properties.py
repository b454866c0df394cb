"""RFC 3339 timestamps, property-tested (issue 8, item 2).

Why: every decision's "now" is the event's own time. An offset such as
`-23:75` or `+99:99` is not a time at all, yet it used to move events by
days and produce commands. Valid RFC 3339 text (any case of T/Z, 1-9
fractional digits, offsets within +-23:59, leap seconds) must parse to the
instant it names; anything with an impossible offset must be rejected.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detectors.timefmt import TimeFormatError, parse_time

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


@st.composite
def rfc3339(draw: st.DrawFn) -> tuple[str, int]:
    """(text, expected epoch ms) of a valid RFC 3339 date-time."""
    moment = draw(st.datetimes(min_value=datetime(1971, 1, 1), max_value=datetime(9998, 12, 31)))
    sep = draw(st.sampled_from("Tt"))
    digits = draw(st.integers(0, 9))
    micro = moment.microsecond
    frac_text = f"{micro:06d}{draw(st.integers(0, 999)):03d}"[:digits] if digits else ""
    millis = int(frac_text[:3].ljust(3, "0")) if digits else 0
    zone_kind = draw(st.sampled_from(["Z", "z", "offset"]))
    offset_min = draw(st.integers(-(23 * 60 + 59), 23 * 60 + 59)) if zone_kind == "offset" else 0
    if zone_kind == "offset":
        sign = "-" if offset_min < 0 else "+"
        hh, mm = divmod(abs(offset_min), 60)
        zone = f"{sign}{hh:02d}:{mm:02d}"
    else:
        zone = zone_kind
    text = (f"{moment:%Y-%m-%d}{sep}{moment:%H:%M:%S}"
            + (f".{frac_text}" if digits else "") + zone)
    local = moment.replace(microsecond=0, tzinfo=UTC)
    utc = local - timedelta(minutes=offset_min)
    return text, (utc - _EPOCH) // timedelta(milliseconds=1) + millis


@given(rfc3339())
def test_valid_rfc3339_parses_to_the_instant_it_names(case: tuple[str, int]) -> None:
    text, expected = case
    assert parse_time(text) == expected


@given(st.integers(0, 99), st.integers(0, 99), st.sampled_from("+-"))
def test_offsets_outside_rfc3339_are_rejected(hours: int, minutes: int, sign: str) -> None:
    text = f"2026-11-01T00:00:00{sign}{hours:02d}:{minutes:02d}"
    if hours <= 23 and minutes <= 59:
        assert parse_time(text) == parse_time("2026-11-01T00:00:00Z") - int(
            f"{sign}1") * (hours * 60 + minutes) * 60_000
    else:
        with pytest.raises(TimeFormatError, match="invalid UTC offset"):
            parse_time(text)


@pytest.mark.parametrize("text", ["2026-11-01T00:00:00-23:75", "2026-11-01T00:00:00+99:99",
                                  "2026-11-01T00:00:00+2400"])
def test_the_reported_offsets_are_dead_letters(text: str) -> None:
    from worker.formats import Invalid, decode_line  # noqa: PLC0415

    line = (b'{"event_id":"e1","type":"login","occurred_at":"' + text.encode()
            + b'","session":{"id":"s"},"request":{"ip":"1.2.3.4"}}')
    [outcome] = decode_line(line)
    assert isinstance(outcome, Invalid) and "invalid UTC offset" in outcome.reason


def test_leap_second_folds_forward() -> None:
    assert parse_time("2016-12-31T23:59:60Z") == parse_time("2017-01-01T00:00:00Z")
