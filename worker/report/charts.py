"""Inline SVG charts for the report: no script, no library, no network.

A stacked bar chart of counts over event time. Counts arrive per minute and
are re-bucketed to at most `MAX_BUCKETS` bars with a round bucket width, so
a run spanning months draws as fast as one spanning an hour.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from html import escape

from detectors.timefmt import format_time

MAX_BUCKETS = 72
_MINUTE = 60_000
_WIDTHS_MIN = (1, 5, 15, 30, 60, 180, 360, 720, 1440, 10080, 43200)
PALETTE = ("#d62728", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")


@dataclass(frozen=True, slots=True)
class Series:
    key: str
    color: str
    total: int


def bucket_minutes(first_minute: int, last_minute: int) -> int:
    """The smallest round bucket width that keeps the chart within MAX_BUCKETS bars."""
    span = last_minute - first_minute + 1
    return next((w for w in _WIDTHS_MIN if span / w <= MAX_BUCKETS), _WIDTHS_MIN[-1])


def width_text(minutes: int) -> str:
    if minutes % 1440 == 0:
        return f"{minutes // 1440} day" + ("s" if minutes > 1440 else "")
    if minutes % 60 == 0:
        return f"{minutes // 60} h"
    return f"{minutes} min"


def stacked_bars(per_minute: Counter[tuple[int, str]], title: str,
                 width: int = 920, height: int = 240) -> tuple[str, list[Series], str]:
    """(svg, legend series, bucket width text) for counts per (minute, series key)."""
    if not per_minute:
        return "", [], ""
    minutes = [m for m, _k in per_minute]
    first, last = min(minutes), max(minutes)
    step = bucket_minutes(first, last)
    start = first - first % step
    buckets: dict[int, Counter[str]] = {}
    totals: Counter[str] = Counter()
    for (minute, key), n in per_minute.items():
        buckets.setdefault((minute - start) // step, Counter())[key] += n
        totals[key] += n
    keys = sorted(totals, key=lambda k: (-totals[k], k))
    series = [Series(k, PALETTE[i % len(PALETTE)], totals[k]) for i, k in enumerate(keys)]
    count = (last - start) // step + 1
    peak = max(sum(c.values()) for c in buckets.values())
    left, bottom, top = 44, 22, 8
    plot_w, plot_h = width - left - 8, height - bottom - top
    bar_w = plot_w / count
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} '
             f'{height}" role="img" aria-label="{escape(title)}">']
    for frac in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - frac)
        parts.append(f'<line x1="{left}" x2="{width - 8}" y1="{y:.1f}" y2="{y:.1f}" '
                     'class="grid"/>')
        parts.append(f'<text x="{left - 4}" y="{y + 4:.1f}" class="axis" text-anchor="end">'
                     f"{round(peak * frac):,}</text>")
    for index in sorted(buckets):
        counts = buckets[index]
        x = left + index * bar_w
        y = top + plot_h
        at = format_time((start + index * step) * _MINUTE)
        for s in series:
            n = counts.get(s.key, 0)
            if not n:
                continue
            h = plot_h * n / peak
            y -= h
            parts.append(f'<rect x="{x + 0.5:.1f}" y="{y:.1f}" width="{max(bar_w - 1, 0.8):.1f}" '
                         f'height="{h:.1f}" fill="{s.color}"><title>{escape(at)} '
                         f"{escape(s.key)}: {n:,}</title></rect>")
    for index in sorted({0, count // 2, count - 1}):
        x = left + index * bar_w
        label = format_time((start + index * step) * _MINUTE)[:16].replace("T", " ")
        anchor = "start" if index == 0 else ("end" if index == count - 1 else "middle")
        parts.append(f'<text x="{x + (bar_w if anchor == "end" else 0):.1f}" y="{height - 6}" '
                     f'class="axis" text-anchor="{anchor}">{escape(label)}</text>')
    parts.append("</svg>")
    return "".join(parts), series, width_text(step)
