"""Server-side SVG charts for the staff dashboard: plain markup strings, no JavaScript, no CDN.

Each function returns one `<svg>` element (well-formed XML, inline in the admin page) with a `<title>`
for the chart and one per point or bar, which browsers show on hover. Every piece of text that goes
into the markup passes through `_text` (XML-escaped), so a decline code or a client app's name
cannot inject markup.

Values are integers (minor units, counts) or `Decimal` rates in 0..1; positions are computed with
`Decimal` and written with one decimal, so the same data always gives the same markup (and tests
can compute the expected coordinates by hand). Formatting a value for a label (money, percent)
is the caller's business: it passes a `fmt` function.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from html import escape

Number = int | Decimal

# Plot geometry (viewBox units). The SVG scales to its container's width.
WIDTH = 640
HEIGHT = 220
LEFT = 64  # room for the y-axis labels
RIGHT = 12
TOP = 28  # room for the legend
BOTTOM = 34  # room for the x-axis labels
MAX_X_LABELS = 8

SVG_NS = "http://www.w3.org/2000/svg"


@dataclass(frozen=True)
class Series:
    """One line (or the bars) of a chart: a value per x label (None: no value that day)."""

    name: str
    values: Sequence[Number | None]
    css_class: str = "series-a"
    titles: Sequence[str] | None = None  # hover text per point; default "<label>: <fmt(value)>"


@dataclass(frozen=True)
class BarRow:
    """One bar of a horizontal bar chart (the decline mix)."""

    label: str
    value: int
    note: str = ""  # e.g. "12.5%", written after the value


def _text(value: object) -> str:
    return escape(str(value), quote=True)


def _num(value: Decimal) -> str:
    """A coordinate with one decimal: Decimal("12.345") -> "12.3"; "-0.0" never appears."""
    rounded = value.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    return str(rounded + 0)


def nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 x 10^k (k >= 0) that is >= value, for an axis maximum; 0 -> 1."""
    if value <= 0:
        return 1
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def _svg_open(title: str, css_class: str, width: int = WIDTH, height: int = HEIGHT) -> list[str]:
    return [
        f'<svg xmlns="{SVG_NS}" class="chart {_text(css_class)}" viewBox="0 0 {width} {height}" '
        f'role="img" preserveAspectRatio="xMidYMid meet">',
        f"<title>{_text(title)}</title>",
    ]


def _no_data(title: str, css_class: str, message: str, height: int = HEIGHT) -> str:
    parts = _svg_open(title, f"{css_class} chart-empty", WIDTH, height)
    parts.append(
        f'<rect class="plot-frame" x="{LEFT}" y="{TOP}" width="{WIDTH - LEFT - RIGHT}" '
        f'height="{height - TOP - BOTTOM}" fill="none" stroke="#ccc"/>'
    )
    parts.append(
        f'<text class="no-data" x="{(LEFT + WIDTH - RIGHT) // 2}" y="{(TOP + height - BOTTOM) // 2 + 4}" '
        f'text-anchor="middle" fill="#767676">{_text(message)}</text>'
    )
    parts.append("</svg>")
    return "\n".join(parts)


def _y_of(value: Number, y_max: Number) -> Decimal:
    """The y coordinate of a value on an axis 0..y_max (SVG's y grows downwards)."""
    plot_height = Decimal(HEIGHT - TOP - BOTTOM)
    return Decimal(HEIGHT - BOTTOM) - Decimal(value) * plot_height / Decimal(y_max)


def _x_label_step(count: int) -> int:
    return max(1, -(-count // MAX_X_LABELS))  # ceil(count / MAX_X_LABELS)


def _axes(labels: Sequence[str], x_positions: Sequence[Decimal], y_max: Number, fmt: Callable, ticks: int) -> list[str]:
    """Grid lines with y labels at 0, y_max/ticks, ..., y_max; x labels under some points."""
    parts = ['<g class="axes" font-size="11" fill="#767676">']
    for i in range(ticks + 1):
        value = Decimal(y_max) * i / ticks
        if isinstance(y_max, int) and value == value.to_integral_value():
            value = int(value)
        y = _num(_y_of(value, y_max))
        parts.append(f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{y}" y2="{y}" stroke="#e5e5e5"/>')
        parts.append(
            f'<text class="y-label" x="{LEFT - 6}" y="{y}" text-anchor="end" dy="4">{_text(fmt(value))}</text>'
        )
    step = _x_label_step(len(labels))
    for index in range(0, len(labels), step):
        parts.append(
            f'<text class="x-label" x="{_num(x_positions[index])}" y="{HEIGHT - BOTTOM + 16}" '
            f'text-anchor="middle">{_text(labels[index])}</text>'
        )
    parts.append(
        f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{HEIGHT - BOTTOM}" y2="{HEIGHT - BOTTOM}" '
        f'stroke="#999"/>'
    )
    parts.append("</g>")
    return parts


def _legend(series: Sequence[Series]) -> list[str]:
    parts = ['<g class="legend" font-size="11">']
    x = LEFT
    for item in series:
        parts.append(f'<rect class="swatch {_text(item.css_class)}" x="{x}" y="8" width="10" height="10"/>')
        parts.append(f'<text x="{x + 14}" y="17" fill="#444">{_text(item.name)}</text>')
        x += 24 + 7 * len(item.name)
    parts.append("</g>")
    return parts


def _title_of(item: Series, index: int, label: str, value: Number, fmt: Callable) -> str:
    if item.titles is not None:
        return item.titles[index]
    return f"{label}: {fmt(value)}"


def line_x_positions(count: int) -> list[Decimal]:
    """Evenly spread points from the left to the right edge of the plot (one point: the middle)."""
    left, right = Decimal(LEFT), Decimal(WIDTH - RIGHT)
    if count == 1:
        return [(left + right) / 2]
    return [left + (right - left) * i / (count - 1) for i in range(count)]


def _line(item: Series, labels: Sequence[str], xs: Sequence[Decimal], y_max: Number, fmt: Callable, area: bool):
    """Path segments between None gaps, an optional area under each, and a circle per point."""
    parts = [f'<g class="series {_text(item.css_class)}">']
    segments: list[list[tuple[Decimal, Decimal]]] = [[]]
    for x, value in zip(xs, item.values, strict=True):
        if value is None:
            if segments[-1]:
                segments.append([])
            continue
        segments[-1].append((x, _y_of(value, y_max)))
    baseline = _num(Decimal(HEIGHT - BOTTOM))
    for segment in segments:
        if not segment:
            continue
        points = " ".join(f"{_num(x)},{_num(y)}" for x, y in segment)
        if area:
            first, last = _num(segment[0][0]), _num(segment[-1][0])
            parts.append(f'<polygon class="area" points="{first},{baseline} {points} {last},{baseline}"/>')
        parts.append(f'<polyline class="line" fill="none" points="{points}"/>')
    for index, (x, value) in enumerate(zip(xs, item.values, strict=True)):
        if value is None:
            continue
        title = _title_of(item, index, labels[index], value, fmt)
        parts.append(
            f'<circle class="point" cx="{_num(x)}" cy="{_num(_y_of(value, y_max))}" r="3">'
            f"<title>{_text(title)}</title></circle>"
        )
    parts.append("</g>")
    return parts


def line_chart(
    *,
    title: str,
    labels: Sequence[str],
    series: Sequence[Series],
    fmt: Callable[[Number], str] = str,
    y_max: Number | None = None,
    ticks: int = 4,
    area: bool = True,
    css_class: str = "line-chart",
    empty_message: str = "No data for this period",
) -> str:
    """A line (with the area under it) per series over the x labels; gaps where a value is None.

    `y_max` fixes the axis (e.g. Decimal(1) for rates); by default it is the nice ceiling of the
    largest value (integer series)."""
    values = [value for item in series for value in item.values if value is not None]
    if not labels or not values:
        return _no_data(title, css_class, empty_message)
    for item in series:
        if len(item.values) != len(labels):
            raise ValueError(f"series {item.name!r} has {len(item.values)} values for {len(labels)} labels")
    if y_max is None:
        y_max = nice_ceiling(max(int(value) for value in values))
    xs = line_x_positions(len(labels))
    parts = _svg_open(title, css_class)
    parts += _axes(labels, xs, y_max, fmt, ticks)
    for item in series:
        parts += _line(item, labels, xs, y_max, fmt, area)
    parts += _legend(series)
    parts.append("</svg>")
    return "\n".join(parts)


def bar_slots(count: int) -> list[tuple[Decimal, Decimal]]:
    """(x, width) of each bar: equal slots across the plot, a bar filling 70% of its slot."""
    slot = Decimal(WIDTH - LEFT - RIGHT) / count
    width = slot * Decimal("0.7")
    return [(Decimal(LEFT) + slot * i + (slot - width) / 2, width) for i in range(count)]


def bar_chart(
    *,
    title: str,
    labels: Sequence[str],
    bars: Series,
    line: Series | None = None,
    fmt: Callable[[Number], str] = str,
    ticks: int = 4,
    css_class: str = "bar-chart",
    empty_message: str = "No data for this period",
) -> str:
    """Vertical bars (e.g. gross captured per day) with an optional line over them (e.g. net).

    Bars start at 0; negative values (a net below zero) are drawn as 0-height bars and the line
    clamps at the axis, with the real figure in the hover title."""
    if len(bars.values) != len(labels) or (line is not None and len(line.values) != len(labels)):
        raise ValueError("every series needs one value per label")
    values = [int(value) for item in (bars, line) if item is not None for value in item.values if value is not None]
    if not labels or not any(value > 0 for value in values):
        return _no_data(title, css_class, empty_message)
    y_max = nice_ceiling(max(values))
    slots = bar_slots(len(labels))
    centers = [x + width / 2 for x, width in slots]
    parts = _svg_open(title, css_class)
    parts += _axes(labels, centers, y_max, fmt, ticks)
    parts.append(f'<g class="series {_text(bars.css_class)}">')
    base = Decimal(HEIGHT - BOTTOM)
    for index, ((x, width), value) in enumerate(zip(slots, bars.values, strict=True)):
        if value is None:
            continue
        top = _y_of(max(int(value), 0), y_max)
        parts.append(
            f'<rect class="bar" x="{_num(x)}" y="{_num(top)}" width="{_num(width)}" height="{_num(base - top)}">'
            f"<title>{_text(_title_of(bars, index, labels[index], value, fmt))}</title></rect>"
        )
    parts.append("</g>")
    if line is not None:
        clamped = Series(
            line.name,
            [None if value is None else max(int(value), 0) for value in line.values],
            line.css_class,
            titles=[
                _title_of(line, index, labels[index], value, fmt) if value is not None else ""
                for index, value in enumerate(line.values)
            ],
        )
        parts += _line(clamped, labels, centers, y_max, fmt, area=False)
    parts += _legend([bars] + ([line] if line is not None else []))
    parts.append("</svg>")
    return "\n".join(parts)


HBAR_ROW = 22
HBAR_LABEL = 200  # room for the labels on the left, at least
HBAR_LABEL_MAX = 300  # and at most (a longer label is cut at the edge; its bar title has it whole)
HBAR_NOTE = 160  # room for the value and note on the right


def hbar_chart(
    *,
    title: str,
    rows: Sequence[BarRow],
    css_class: str = "hbar-chart",
    empty_message: str = "Nothing to show for this period",
) -> str:
    """Horizontal bars, longest = the largest value, one row each (the decline and error mix)."""
    if not rows or not any(row.value > 0 for row in rows):
        return _no_data(title, css_class, empty_message, height=TOP + BOTTOM + 40)
    height = TOP + HBAR_ROW * len(rows) + 8
    largest = max(row.value for row in rows)
    # Room for the longest label (about 7 px a character at 12 px), within bounds.
    label_width = min(HBAR_LABEL_MAX, max(HBAR_LABEL, 7 * max(len(row.label) for row in rows) + 16))
    plot_width = Decimal(WIDTH - label_width - HBAR_NOTE)
    parts = _svg_open(title, css_class, WIDTH, height)
    parts.append('<g class="rows" font-size="12">')
    for index, row in enumerate(rows):
        y = TOP + HBAR_ROW * index
        width = plot_width * max(row.value, 0) / largest
        note = f"{row.value} ({row.note})" if row.note else str(row.value)
        parts.append(
            f'<text class="row-label" x="{label_width - 8}" y="{y + 15}" text-anchor="end" fill="#444">'
            f"{_text(row.label)}</text>"
        )
        parts.append(
            f'<rect class="bar" x="{label_width}" y="{y + 3}" width="{_num(width)}" height="{HBAR_ROW - 6}">'
            f"<title>{_text(f'{row.label}: {note}')}</title></rect>"
        )
        parts.append(
            f'<text class="row-value" x="{_num(label_width + width + 6)}" y="{y + 15}" fill="#444">{_text(note)}</text>'
        )
    parts.append("</g>")
    parts.append("</svg>")
    return "\n".join(parts)
