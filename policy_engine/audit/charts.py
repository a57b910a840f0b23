"""Tiny inline-SVG charts: horizontal bars, stacked columns and a line. No scripts, no fonts.

Output is a pure function of the data (coordinates rounded to one decimal), so the same
report draws byte-identical charts. Every chart carries a <title> and an aria-label.
"""

from __future__ import annotations

from html import escape

WIDTH = 680
PALETTE = ("#2b6cb0", "#d69e2e", "#805ad5", "#dd6b20", "#c53030", "#38a169", "#718096", "#319795")
STAGE_COLORS = {
    "production": "#2b6cb0",
    "canary": "#d69e2e",
    "shadow": "#805ad5",
    "fallback": "#dd6b20",
    "deprecated": "#c53030",
    "proposed": "#38a169",
    "retired": "#718096",
}


def _n(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _amount(value: float, unit: str) -> str:
    if unit.isupper() and len(unit) == 3:  # a currency code
        return f"{unit} {value:,.0f}"
    return f"{value:,.0f} {unit}"


def _open(title: str, height: float) -> list[str]:
    label = escape(title, quote=True)
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {WIDTH} {_n(height)}" '
        f'width="{WIDTH}" height="{_n(height)}" role="img" aria-label="{label}">',
        f"<title>{escape(title)}</title>",
        f'<text x="0" y="16" class="chart-title">{escape(title)}</text>',
    ]


def _nice_max(value: float) -> float:
    """A round axis maximum at or above ``value``."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 2.5, 5, 10):
        top = step * magnitude
        if top >= value:
            return float(top)
    return float(10 * magnitude)


def _grid(left: float, right: float, top: float, plot: float, axis: float, unit: str) -> list[str]:
    """Five horizontal grid lines with their values, bottom (0) to top (``axis``)."""
    out = []
    for step in range(5):
        tick = axis * step / 4
        y = top + plot - plot * step / 4
        out.append(f'<line x1="{_n(left)}" y1="{_n(y)}" x2="{_n(WIDTH - right)}" y2="{_n(y)}" class="grid"/>')
        label = escape(_amount(tick, unit))
        out.append(f'<text x="{_n(left - 6)}" y="{_n(y + 4)}" text-anchor="end">{label}</text>')
    return out


def bars(title: str, items: list[tuple[str, float]], unit: str) -> str:
    """One horizontal bar per (label, value), largest scale = the largest value."""
    label_width, value_width, row = 200.0, 110.0, 24.0
    top = 30.0
    height = top + row * len(items) + 8
    scale = max((v for _, v in items), default=0.0) or 1.0
    span = WIDTH - label_width - value_width
    out = _open(title, height)
    for index, (label, value) in enumerate(items):
        y = top + index * row
        width = max(value, 0.0) / scale * span
        color = PALETTE[index % len(PALETTE)]
        out.append(
            f'<text x="{_n(label_width - 8)}" y="{_n(y + 15)}" text-anchor="end">{escape(label)}</text>'
        )
        out.append(
            f'<rect x="{_n(label_width)}" y="{_n(y + 3)}" width="{_n(width)}" height="{_n(row - 8)}" '
            f'fill="{color}"><title>{escape(label)}: {escape(_amount(value, unit))}</title></rect>'
        )
        out.append(
            f'<text x="{_n(label_width + width + 6)}" y="{_n(y + 15)}">{escape(_amount(value, unit))}</text>'
        )
    out.append("</svg>")
    return "\n".join(out)


def stacked(
    title: str,
    categories: list[str],
    series: list[tuple[str, list[float]]],
    unit: str,
    notes: list[str] | None = None,
) -> str:
    """Stacked columns: one column per category, one layer per series, with a legend."""
    left, right, top, plot = 90.0, 20.0, 34.0, 200.0
    legend_rows = (len(series) + 3) // 4
    height = top + plot + 44 + 20 * legend_rows
    totals = [sum(values[i] for _, values in series) for i in range(len(categories))]
    axis = _nice_max(max(totals, default=0.0))
    out = _open(title, height)
    width = WIDTH - left - right
    out += _grid(left, right, top, plot, axis, unit)
    slot = width / max(len(categories), 1)
    column = min(slot * 0.6, 90.0)
    for index, category in enumerate(categories):
        x = left + slot * index + (slot - column) / 2
        base = top + plot
        for position, (name, values) in enumerate(series):
            value = values[index]
            if value <= 0:
                continue
            h = value / axis * plot
            base -= h
            color = STAGE_COLORS.get(name, PALETTE[position % len(PALETTE)])
            out.append(
                f'<rect x="{_n(x)}" y="{_n(base)}" width="{_n(column)}" height="{_n(h)}" fill="{color}">'
                f"<title>{escape(category)} {escape(name)}: {escape(_amount(value, unit))}</title></rect>"
            )
        middle = x + column / 2
        out.append(
            f'<text x="{_n(middle)}" y="{_n(top + plot + 16)}" text-anchor="middle">{escape(category)}</text>'
        )
        if notes and index < len(notes):
            out.append(
                f'<text x="{_n(middle)}" y="{_n(top + plot + 30)}" text-anchor="middle" class="muted">'
                f"{escape(notes[index])}</text>"
            )
    legend_top = top + plot + 44
    for position, (name, _) in enumerate(series):
        x = left + (position % 4) * 140
        y = legend_top + (position // 4) * 20
        color = STAGE_COLORS.get(name, PALETTE[position % len(PALETTE)])
        out.append(f'<rect x="{_n(x)}" y="{_n(y)}" width="12" height="12" fill="{color}"/>')
        out.append(f'<text x="{_n(x + 18)}" y="{_n(y + 10)}">{escape(name)}</text>')
    out.append("</svg>")
    return "\n".join(out)


def line(title: str, points: list[tuple[str, float | None]], unit: str) -> str:
    """A line through the known points; a missing point is marked "no data" and breaks the line."""
    left, right, top, plot = 80.0, 10.0, 34.0, 150.0
    height = top + plot + 30
    known = [v for _, v in points if v is not None]
    axis = _nice_max(max(known, default=0.0))
    out = _open(title, height)
    out += _grid(left, right, top, plot, axis, unit)
    inset = 40.0  # keeps the first and last labels clear of the axis and the edge
    span = WIDTH - left - right - 2 * inset
    step_x = span / max(len(points) - 1, 1)
    path: list[str] = []
    segments: list[list[str]] = []
    for index, (label, value) in enumerate(points):
        x = left + inset + (step_x * index if len(points) > 1 else span / 2)
        out.append(f'<text x="{_n(x)}" y="{_n(top + plot + 18)}" text-anchor="middle">{escape(label)}</text>')
        if value is None:
            y = top + plot - 6
            out.append(f'<text x="{_n(x)}" y="{_n(y)}" text-anchor="middle" class="muted">no data</text>')
            if path:
                segments.append(path)
                path = []
            continue
        y = top + plot - value / axis * plot
        path.append(f"{_n(x)},{_n(y)}")
        out.append(
            f'<circle cx="{_n(x)}" cy="{_n(y)}" r="4" fill="{PALETTE[0]}">'
            f"<title>{escape(label)}: {escape(_amount(value, unit))}</title></circle>"
        )
        out.append(
            f'<text x="{_n(x)}" y="{_n(y - 8)}" text-anchor="middle">{escape(_amount(value, unit))}</text>'
        )
    if path:
        segments.append(path)
    for segment in segments:
        if len(segment) > 1:
            out.append(
                f'<polyline points="{" ".join(segment)}" fill="none" stroke="{PALETTE[0]}" stroke-width="2"/>'
            )
    out.append("</svg>")
    return "\n".join(out)
