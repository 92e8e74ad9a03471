"""Server-side SVG charts for the dashboard: no JavaScript, no CDN, readable on a laptop screen.

Each function returns an `<svg>` element as text with a <title> per mark, so
hovering shows the exact figure; the axis carries a few round ticks.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date
from html import escape

WIDTH, HEIGHT = 560, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 24, 34
PALETTE = ("#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c")


def _ticks(top: float, count: int = 4) -> list[float]:
    if top <= 0:
        return [0.0, 1.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [step * i for i in range(math.ceil(top / step) + 1)]


def _fmt(value: float, percent: bool) -> str:
    if percent:
        return f"{value * 100:.0f}%" if value >= 0.1 or value == 0 else f"{value * 100:.1f}%"
    return f"{value:,.0f}" if value >= 10 or value == int(value) else f"{value:.1f}"


def _frame(title: str, ticks: list[float], scale: float, percent: bool) -> list[str]:
    plot_h = HEIGHT - TOP - BOTTOM
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'class="chart" role="img" aria-label="{escape(title)}">',
        f'<text x="{LEFT}" y="15" class="chart-title">{escape(title)}</text>',
    ]
    for t in ticks:
        y = TOP + plot_h - t * scale
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">'
            f"{_fmt(t, percent)}</text>"
        )
    return parts


def bars(
    title: str, series: Sequence[tuple[str, float]], *, percent: bool = False, empty: str = ""
) -> str:
    """A bar per (label, value)."""
    if not series:
        return _empty(title, empty)
    top = max(v for _, v in series) or 1.0
    ticks = _ticks(top)
    plot_h, plot_w = HEIGHT - TOP - BOTTOM, WIDTH - LEFT - RIGHT
    scale = plot_h / ticks[-1]
    parts = _frame(title, ticks, scale, percent)
    slot = plot_w / len(series)
    bar_w = max(min(slot * 0.7, 60), 2)
    for i, (label, value) in enumerate(series):
        x = LEFT + i * slot + (slot - bar_w) / 2
        h = value * scale
        y = TOP + plot_h - h
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" fill="{PALETTE[0]}">'
            f"<title>{escape(label)}: {_fmt(value, percent)}</title></rect>"
        )
        if len(series) <= 16 or i % math.ceil(len(series) / 8) == 0:
            parts.append(
                f'<text x="{x + bar_w / 2:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
                f'class="tick">{escape(label)}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def lines(
    title: str,
    days: Sequence[date],
    series: dict[str, Sequence[float]],
    *,
    percent: bool = False,
    empty: str = "",
) -> str:
    """One line per named series over the same days, with a legend."""
    if not days or not series:
        return _empty(title, empty)
    top = max((max(v) for v in series.values() if v), default=0.0) or 1.0
    ticks = _ticks(top)
    plot_h, plot_w = HEIGHT - TOP - BOTTOM, WIDTH - LEFT - RIGHT
    scale = plot_h / ticks[-1]
    parts = _frame(title, ticks, scale, percent)
    step = plot_w / max(len(days) - 1, 1)
    for n, (name, values) in enumerate(series.items()):
        colour = PALETTE[n % len(PALETTE)]
        points = [
            (LEFT + i * step, TOP + plot_h - v * scale) for i, v in enumerate(values[: len(days)])
        ]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in points)
        parts.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        for (x, y), day, v in zip(points, days, values, strict=False):
            parts.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}">'
                f"<title>{escape(name)} {day.isoformat()}: {_fmt(v, percent)}</title></circle>"
            )
        parts.append(
            f'<rect x="{WIDTH - RIGHT - 150}" y="{8 + n * 14}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{WIDTH - RIGHT - 135}" y="{17 + n * 14}" class="tick">{escape(name)}</text>'
        )
    every = max(1, math.ceil(len(days) / 7))
    for i, day in enumerate(days):
        if i % every == 0 or i == len(days) - 1:
            parts.append(
                f'<text x="{LEFT + i * step:.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle" '
                f'class="tick">{day.strftime("%d %b")}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)


def intervals(
    title: str, rows: Sequence[tuple[str, float | None, float | None, float | None]]
) -> str:
    """One row per (label, rate, low, high): the rate as a dot on its interval's whisker,
    on a shared 0-based percent axis; a row without a rate says so."""
    if not rows:
        return _empty(title, "")
    top = max((h for _, _, _, h in rows if h is not None), default=0.0) or 0.01
    ticks = _ticks(top)
    row_h, left = 26, 120
    height = TOP + len(rows) * row_h + BOTTOM
    plot_w = WIDTH - left - RIGHT
    scale = plot_w / ticks[-1]
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'class="chart" role="img" aria-label="{escape(title)}">',
        f'<text x="{LEFT}" y="15" class="chart-title">{escape(title)}</text>',
    ]
    bottom = TOP + len(rows) * row_h
    for t in ticks:
        x = left + t * scale
        parts.append(
            f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{bottom}" class="grid"/>'
            f'<text x="{x:.1f}" y="{bottom + 16}" text-anchor="middle" class="tick">'
            f"{_fmt(t, True)}</text>"
        )
    for i, (label, rate, low, high) in enumerate(rows):
        y = TOP + i * row_h + row_h / 2
        parts.append(
            f'<text x="{left - 8}" y="{y + 4:.1f}" text-anchor="end" class="tick">'
            f"{escape(label)}</text>"
        )
        if rate is None or low is None or high is None:
            parts.append(
                f'<text x="{left}" y="{y + 4:.1f}" class="tick">no measured journeys yet</text>'
            )
            continue
        colour = PALETTE[i % len(PALETTE)]
        parts.append(
            f'<line x1="{left + low * scale:.1f}" x2="{left + high * scale:.1f}" y1="{y:.1f}" '
            f'y2="{y:.1f}" stroke="{colour}" stroke-width="3"/>'
            f'<circle cx="{left + rate * scale:.1f}" cy="{y:.1f}" r="5" fill="{colour}">'
            f"<title>{escape(label)}: {_fmt(rate, True)} "
            f"(95 % interval {_fmt(low, True)} to {_fmt(high, True)})</title></circle>"
        )
    parts.append("</svg>")
    return "".join(parts)


def _empty(title: str, message: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} 80" class="chart" '
        f'role="img" aria-label="{escape(title)}">'
        f'<text x="{LEFT}" y="15" class="chart-title">{escape(title)}</text>'
        f'<text x="{LEFT}" y="50" class="tick">{escape(message or "no data yet")}</text></svg>'
    )
