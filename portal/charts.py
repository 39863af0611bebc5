"""Charts drawn on the server as SVG: no script, and a table always carries the same figures."""

from __future__ import annotations

from datetime import date
from decimal import Decimal


def usage_chart(uses: list[tuple[date, Decimal | None]], unit: str) -> str:
    """A server-rendered SVG bar chart (the table beside it carries the same figures)."""
    if not uses:
        return ""
    width, height, pad = 640, 220, 32
    top = max((q for _d, q in uses if q is not None), default=Decimal(1)) or Decimal(1)
    bar = (width - pad * 2) / len(uses)
    parts = [
        f'<svg viewBox="0 0 {width} {height}" role="img" aria-labelledby="chart-title" class="chart">',
        f'<title id="chart-title">Use per read period, in {unit}</title>',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#4a5560"/>',
    ]
    for i, (day, q) in enumerate(uses):
        x = pad + i * bar + 4
        h = 0 if q is None else int((height - pad * 2) * q / top)
        y = height - pad - h
        parts.append(f'<rect x="{x:.0f}" y="{y}" width="{bar - 8:.0f}" height="{h}" fill="#0b5394"/>')
        parts.append(
            f'<text x="{x + (bar - 8) / 2:.0f}" y="{height - pad + 14}" font-size="11" '
            f'text-anchor="middle">{day:%b}</text>'
        )
        if q is not None:
            parts.append(
                f'<text x="{x + (bar - 8) / 2:.0f}" y="{y - 4}" font-size="11" '
                f'text-anchor="middle">{q.normalize():f}</text>'
            )
    parts.append("</svg>")
    return "".join(parts)
