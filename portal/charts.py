"""Charts drawn on the server as SVG: no script, and a table always carries the same figures."""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from html import escape

from .billing_core.reads import format_quantity


def _drawable(q: Decimal | None) -> Decimal | None:
    """A quantity a bar can show; anything else (NaN, an infinity, a value no meter reads,
    whose scaling would overflow) is drawn as no bar, and the table beside the chart says
    what is stored."""
    return q if isinstance(q, Decimal) and q.is_finite() and q.adjusted() < 15 else None


def _finite(uses: list[tuple[date, Decimal | None]]) -> list[tuple[date, Decimal | None]]:
    return [(day, _drawable(q)) for day, q in uses]


def usage_chart(uses: list[tuple[date, Decimal | None]], unit: str) -> str:
    """A server-rendered SVG bar chart (the table beside it carries the same figures).

    The bars are one path and the labels two text runs: a print file holds thousands of
    these charts, and Chromium lays out and prints one element far faster than forty."""
    if not uses:
        return ""
    uses = _finite(uses)
    width, height, pad = 640, 220, 32
    top = max((q for _d, q in uses if q is not None), default=Decimal(1)) or Decimal(1)
    bar = (width - pad * 2) // len(uses)
    base = height - pad
    bars, months, values = [], [], []
    for i, (day, q) in enumerate(uses):
        x = pad + i * bar + 4
        middle = x + (bar - 8) // 2
        months.append(f'<tspan x="{middle}">{day:%b}</tspan>')
        if q is None:
            continue
        h = int((height - pad * 2) * q / top)
        if h:
            bars.append(f"M{x} {base - h}h{bar - 8}v{h}h-{bar - 8}z")
        values.append(f'<tspan x="{middle}" y="{base - h - 4}">{escape(format_quantity(q))}</tspan>')
    return (
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-labelledby="chart-title" class="chart">'
        f'<title id="chart-title">Use per read period, in {escape(unit)}</title>'
        f'<line x1="{pad}" y1="{base}" x2="{width - pad}" y2="{base}" stroke="#4a5560"/>'
        f'<path d="{"".join(bars)}" fill="#0b5394"/>'
        f'<text y="{base + 14}" font-size="11" text-anchor="middle">{"".join(months)}</text>'
        f'<text font-size="11" text-anchor="middle">{"".join(values)}</text>'
        "</svg>"
    )


def usage_bars(uses: list[tuple[date, Decimal | None]]) -> str:
    """Bars only, one per period, stretched to the width of the table drawn under them
    (``table-layout: fixed``, one column per period), whose cells are the labels. A bill
    prints this way: text inside SVG is what makes a chart slow to print, and the table
    is the accessible form anyway."""
    if not uses:
        return ""
    uses = _finite(uses)
    top = max((q for _d, q in uses if q is not None), default=Decimal(1)) or Decimal(1)
    bars = []
    for i, (_day, q) in enumerate(uses):
        h = 0 if q is None else int(96 * q / top)
        if h:
            bars.append(f"M{i * 10 + 2} {100 - h}h6v{h}h-6z")
    return (
        f'<svg viewBox="0 0 {len(uses) * 10} 100" preserveAspectRatio="none" class="bars" aria-hidden="true">'
        f'<path d="{"".join(bars)}" fill="#0b5394"/>'
        f'<rect x="0" y="99" width="{len(uses) * 10}" height="1" fill="#4a5560"/></svg>'
    )


LABEL_WIDTH = 8  # characters per period in ``usage_labels``; the bars' width is set to match


def usage_labels(uses: list[tuple[date, Decimal | None]]) -> str:
    """The month and use under each bar as two lines of fixed-width text, for paper: two
    text runs print far faster than a table of 26 cells (see docs/performance.md)."""
    uses = _finite(uses)
    months = "".join(f"{day:%b %y}".center(LABEL_WIDTH) for day, _q in uses)
    values = "".join(format_quantity(q).center(LABEL_WIDTH) for _day, q in uses)
    return f"{months.rstrip()}\n{values.rstrip()}"


def compare_chart(rows: list[tuple[str, Decimal | None, Decimal | None]], title: str, legend: tuple[str, str]) -> str:
    """Two bars a month, this year (dark) beside last year (grey), with a legend; the table
    beside it carries the same figures. ``rows`` are (month label, this year, last year)."""
    if not rows:
        return ""
    rows = [(label, _drawable(a), _drawable(b)) for label, a, b in rows]
    # Labels 24 units high: the chart is 640 units wide and a 360 px phone draws it about
    # 330 px wide, where they are still 12 px.
    width, height, pad, top_pad, foot = 640, 256, 28, 44, 36
    top = max((q for _m, *pair in rows for q in pair if q is not None), default=Decimal(1)) or Decimal(1)
    slot = (width - pad * 2) // len(rows)
    bar = max((slot - 6) // 2, 2)
    base = height - foot
    now_bars, then_bars, labels = [], [], []
    for i, (label, this_year, last_year) in enumerate(rows):
        x = pad + i * slot + 3
        labels.append(f'<tspan x="{x + bar}">{escape(label)}</tspan>')
        for q, bars, offset in ((last_year, then_bars, 0), (this_year, now_bars, bar)):
            h = 0 if q is None else int((base - top_pad) * q / top)
            if h:
                bars.append(f"M{x + offset} {base - h}h{bar}v{h}h-{bar}z")
    now_label, then_label = (escape(t) for t in legend)
    return (
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-labelledby="compare-title" class="chart">'
        f'<title id="compare-title">{escape(title)}</title>'
        f'<rect x="{pad}" y="4" width="20" height="20" fill="#0b5394"/>'
        f'<text x="{pad + 28}" y="22" font-size="24">{now_label}</text>'
        f'<rect x="{pad + 300}" y="4" width="20" height="20" fill="#6b7682"/>'
        f'<text x="{pad + 328}" y="22" font-size="24">{then_label}</text>'
        f'<line x1="{pad}" y1="{base}" x2="{width - pad}" y2="{base}" stroke="#4a5560"/>'
        f'<path d="{"".join(then_bars)}" fill="#6b7682"/>'
        f'<path d="{"".join(now_bars)}" fill="#0b5394"/>'
        f'<text y="{base + 26}" font-size="24" text-anchor="middle">{"".join(labels)}</text>'
        "</svg>"
    )
