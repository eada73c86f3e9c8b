"""Charts drawn on the server as inline SVG: no JavaScript library, readable without scripts.

Each chart is an ``<svg role="img">`` with a title for screen readers, a
``<title>`` tooltip on every bar and point, and a legend when there is more
than one series.  Every text that came from people (service names, point
names) is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from markupsafe import Markup, escape

# Colour-blind-safe (Okabe-Ito), in the order series get them.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")

Series = tuple[str, Sequence[float | None]]
Format = Callable[[float], str]

LEFT, RIGHT, TOP, BOTTOM = 56, 12, 34, 30
LEGEND_ROW = 20


def plain(value: float) -> str:
    return f"{value:g}" if value != int(value) else str(int(value))


def minutes(value: float) -> str:
    """Seconds as m:ss (or h:mm:ss)."""
    total = int(round(value))
    hours, rest = divmod(total, 3600)
    mins, secs = divmod(rest, 60)
    return f"{hours}:{mins:02d}:{secs:02d}" if hours else f"{mins}:{secs:02d}"


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten at or above ``value`` (1 for nothing)."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power + 1e-9:
            return step * power
    return 10 * power


# Steps a clock reader likes: seconds, then minutes, then hours.
TIME_STEPS = (5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600)
TICKS = 4


def time_ceiling(seconds: float) -> float:
    """The top of a time axis: four ticks of a round step (e.g. 0, 10:00, 20:00, 30:00, 40:00)."""
    if seconds <= 0 or not math.isfinite(seconds):
        return TICKS * 15.0
    for step in TIME_STEPS:
        if seconds <= step * TICKS:
            return float(step * TICKS)
    return nice_ceiling(seconds / 3600 / TICKS) * 3600 * TICKS


Scale = Callable[[float], float]


def _ticks(top: float, count: int = TICKS) -> list[float]:
    return [top * i / count for i in range(count + 1)]


def _legend(series: Sequence[Series], y: float, width: int) -> list[str]:
    if len(series) < 2:
        return []
    parts, x = [], float(LEFT)
    for i, (name, _) in enumerate(series):
        label = str(name)
        if x + 24 + 7 * len(label) > width and x > LEFT:
            break  # no room left on the row; the table below the chart has every name
        colour = PALETTE[i % len(PALETTE)]
        parts.append(f'<rect x="{x:.1f}" y="{y - 10:.1f}" width="12" height="12" fill="{colour}"/>'
                     f'<text x="{x + 16:.1f}" y="{y:.1f}" class="legend">{escape(label)}</text>')
        x += 28 + 7 * len(label)
    return parts


def _frame(title: str, width: int, height: int, body: list[str], desc: str) -> Markup:
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" role="img" '
            f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" aria-label="{escape(title)}">'
            f"<title>{escape(title)}</title><desc>{escape(desc)}</desc>"
            "<style>text{font:12px system-ui,sans-serif;fill:#333}.t{font-weight:600;font-size:14px}"
            ".axis{stroke:#999}.grid{stroke:#e5e5e5}.legend{font-size:12px}</style>"
            f'<text x="{LEFT}" y="18" class="t">{escape(title)}</text>')
    return Markup(head + "".join(body) + "</svg>")


def _axes(top_value: float, plot_h: float, plot_w: float, fmt: Format) -> list[str]:
    parts = []
    for tick in _ticks(top_value):
        y = TOP + plot_h - plot_h * tick / top_value
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{LEFT + plot_w:.1f}" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(fmt(tick))}</text>')
    parts.append(f'<line class="axis" x1="{LEFT}" x2="{LEFT + plot_w:.1f}" y1="{TOP + plot_h:.1f}" '
                 f'y2="{TOP + plot_h:.1f}"/>')
    return parts


def _x_labels(labels: Sequence[str], centres: Sequence[float], y: float) -> list[str]:
    # Keep labels from overlapping: show every k-th when they are many.
    spacing = (centres[1] - centres[0]) if len(centres) > 1 else 100.0
    longest = max((len(str(label)) for label in labels), default=1)
    every = max(1, math.ceil((longest * 7 + 6) / max(spacing, 1)))
    return [f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="middle">{escape(str(label))}</text>'
            for i, (label, x) in enumerate(zip(labels, centres, strict=True)) if i % every == 0]


def bar_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    stacked: bool = False,
    fmt: Format = plain,
    scale: Scale = nice_ceiling,
    width: int = 960,
    height: int = 280,
) -> Markup:
    """Vertical bars: one group per label, one bar per series (or one stacked bar).

    ``scale`` gives the top of the axis for the biggest value (``time_ceiling`` for seconds).
    """
    legend = LEGEND_ROW if len(series) > 1 else 0
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM - legend
    values = [[v or 0.0 for v in vals] for _, vals in series]
    if stacked:
        biggest = max((sum(col) for col in zip(*values, strict=True)), default=0.0) if values else 0.0
    else:
        biggest = max((v for vals in values for v in vals), default=0.0)
    top_value = scale(biggest)
    body = _axes(top_value, plot_h, plot_w, fmt)
    slot = plot_w / max(len(labels), 1)
    bars_in_slot = 1 if stacked else max(len(series), 1)
    bar_w = max(1.0, slot * 0.8 / bars_in_slot)
    centres = []
    for i, label in enumerate(labels):
        left = LEFT + slot * i + slot * 0.1
        centres.append(LEFT + slot * (i + 0.5))
        base = 0.0
        for j, (name, vals) in enumerate(series):
            raw = vals[i] if i < len(vals) else None
            value = raw or 0.0
            h = plot_h * value / top_value
            x = left if stacked else left + j * bar_w
            y = TOP + plot_h - h - (plot_h * base / top_value if stacked else 0)
            shown = "–" if raw is None else fmt(value)
            tip = f"{label}: {name} {shown}" if len(series) > 1 else f"{label}: {shown}"
            body.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}" '
                        f'fill="{PALETTE[j % len(PALETTE)]}"><title>{escape(tip)}</title></rect>')
            if stacked:
                base += value
    body += _x_labels(labels, centres, TOP + plot_h + 16)
    body += _legend(series, height - 6, width)
    desc = "; ".join(f"{name}: " + ", ".join(f"{lab} {'–' if v is None else fmt(v)}"
                                            for lab, v in zip(labels, vals, strict=False))
                     for name, vals in series)
    return _frame(title, width, height, body, desc)


def line_chart(
    labels: Sequence[str],
    series: Sequence[Series],
    *,
    title: str,
    fmt: Format = plain,
    scale: Scale = nice_ceiling,
    width: int = 960,
    height: int = 240,
) -> Markup:
    """Lines over the labels (e.g. days), one per series, with a dot at each value."""
    legend = LEGEND_ROW if len(series) > 1 else 0
    plot_w, plot_h = width - LEFT - RIGHT, height - TOP - BOTTOM - legend
    biggest = max((v for _, vals in series for v in vals if v is not None), default=0.0)
    top_value = scale(biggest)
    body = _axes(top_value, plot_h, plot_w, fmt)
    n = len(labels)
    inset = 24.0  # room for the first and last label under their dots
    step = (plot_w - 2 * inset) / (n - 1) if n > 1 else 0.0
    centres = [LEFT + inset + step * i if n > 1 else LEFT + plot_w / 2 for i in range(n)]
    for j, (name, vals) in enumerate(series):
        colour = PALETTE[j % len(PALETTE)]
        points = [(centres[i], TOP + plot_h - plot_h * (v / top_value), labels[i], v)
                  for i, v in enumerate(vals[:n]) if v is not None]
        if len(points) > 1:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in points)
            body.append(f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2"/>')
        radius = 3 if n <= 62 else 1.5
        for x, y, label, v in points:
            tip = f"{label}: {name} {fmt(v)}" if len(series) > 1 else f"{label}: {fmt(v)}"
            body.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{radius}" fill="{colour}">'
                        f"<title>{escape(tip)}</title></circle>")
    if labels:
        body += _x_labels(labels, centres, TOP + plot_h + 16)
    body += _legend(series, height - 6, width)
    desc = "; ".join(f"{name}: " + ", ".join(f"{lab} {'–' if v is None else fmt(v)}"
                                            for lab, v in zip(labels, vals, strict=False))
                     for name, vals in series)
    return _frame(title, width, height, body, desc)
