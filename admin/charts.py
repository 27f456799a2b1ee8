"""Small server-rendered SVG charts: readable without JavaScript, with text alternatives.

Each chart is an ``<svg role="img">`` labelled by its own ``<title>`` and
``<desc>`` (a one-sentence summary the caller writes), drawn with
presentation attributes only (no ``style``, so a strict CSP allows it inline),
in colours that stay apart for colour-blind readers and reach 3:1 against
white (WCAG 1.4.11); series differ by dash pattern too, not by colour alone.
Every chart has a data table (:func:`data_table`) that the page shows beside
it or in a ``<details>``. Callers pass text already translated and numbers
already formatted for labels; this module knows nothing of Flask or gettext.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence

from markupsafe import Markup, escape

# Okabe-Ito based, darkened where needed for 3:1 on white; each with a dash pattern.
PALETTE: tuple[tuple[str, str], ...] = (
    ("#0072b2", ""),  # blue, solid
    ("#c75100", "6 3"),  # vermillion, dashed
    ("#007a5a", "2 2"),  # bluish green, dotted
    ("#9c4f96", "8 3 2 3"),  # reddish purple, dash-dot
    ("#5e5e5e", "10 4"),  # grey, long dash
    ("#a16a00", "4 2 1 2"),  # dark orange, dash-dot-dot
)
WIDTH, HEIGHT = 640, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 28
TEXT = "#1f2328"
GRID = "#d0d7de"


@dataclasses.dataclass(frozen=True)
class Series:
    name: str
    values: Sequence[float]


@dataclasses.dataclass(frozen=True)
class Bar:
    label: str  # the stage / category, shown left of the bar
    value: float
    note: str = ""  # shown right of the bar (count, rate, median time …)
    href: str | None = None  # the bar links here (e.g. the filtered lead list)


def colour(index: int) -> str:
    return PALETTE[index % len(PALETTE)][0]


def nice_scale(value: float) -> tuple[float, float]:
    """(top, step) of an axis from 0 that shows ``value``: steps of 1, 2 or 5 x 10^k
    (at least 1, the data are counts), at most about five lines."""
    if value <= 0:
        return 4.0, 1.0
    raw = value / 4
    exponent = math.floor(math.log10(raw))
    step = 10.0 ** (exponent + 1)
    for factor in (1, 2, 5):
        if factor * 10.0**exponent >= raw:
            step = factor * 10.0**exponent
            break
    step = max(step, 1.0)
    return math.ceil(value / step - 1e-9) * step, step


def _fmt(number: float) -> str:
    return f"{number:.1f}".rstrip("0").rstrip(".")


def _open(
    chart_id: str, title: str, desc: str, height: int = HEIGHT, role: str = "img"
) -> list[str]:
    """The ``<svg>`` with its accessible name and description. A chart with links
    is a ``group`` (links may not sit inside an ``img``), others an ``img``."""
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{escape(chart_id)}" '
        f'viewBox="0 0 {WIDTH} {height}" width="100%" role="{role}" '
        f'aria-labelledby="{escape(chart_id)}-t {escape(chart_id)}-d" '
        f'font-family="system-ui, sans-serif" font-size="12">',
        f'<title id="{escape(chart_id)}-t">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-d">{escape(desc)}</desc>',
    ]


def _y_axis(top_value: float, step: float, plot_h: int) -> list[str]:
    parts = []
    lines = round(top_value / step)
    for i in range(lines + 1):
        value = step * i
        y = TOP + plot_h - plot_h * value / top_value
        parts.append(
            f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{_fmt(y)}" y2="{_fmt(y)}" '
            f'stroke="{GRID}" stroke-width="1"/>'
            f'<text x="{LEFT - 6}" y="{_fmt(y + 4)}" text-anchor="end" fill="{TEXT}">'
            f"{escape(_fmt(value))}</text>"
        )
    return parts


def _x_labels(labels: Sequence[str], xs: Sequence[float], plot_h: int) -> list[str]:
    if not labels:
        return []
    every = max(1, math.ceil(len(labels) / 7))
    shown = set(range(0, len(labels), every)) | {len(labels) - 1}
    if len(labels) - 1 - max(shown - {len(labels) - 1}, default=-every) < every / 2:
        shown.discard(max(shown - {len(labels) - 1}, default=-1))
    last = len(labels) - 1

    def anchor(i: int) -> str:  # the outermost labels stay inside the picture
        return "start" if i == 0 and last else "end" if i == last and last else "middle"

    return [
        f'<text x="{_fmt(xs[i])}" y="{TOP + plot_h + 18}" text-anchor="{anchor(i)}" '
        f'fill="{TEXT}">{escape(labels[i])}</text>'
        for i in sorted(shown)
    ]


def line_chart(
    chart_id: str, title: str, desc: str, labels: Sequence[str], series: Sequence[Series]
) -> Markup:
    """Lines over the same x labels (days …), one colour and dash pattern per series."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    top_value, step = nice_scale(max((v for s in series for v in s.values), default=0))
    n = len(labels)
    xs = [LEFT + (plot_w * i / (n - 1) if n > 1 else plot_w / 2) for i in range(n)]
    parts = _open(chart_id, title, desc)
    parts += _y_axis(top_value, step, plot_h)
    parts += _x_labels(labels, xs, plot_h)
    for index, one in enumerate(series):
        colour_, dash = PALETTE[index % len(PALETTE)]
        points = " ".join(
            f"{_fmt(xs[i])},{_fmt(TOP + plot_h - plot_h * v / top_value)}"
            for i, v in enumerate(one.values)
        )
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(
            f'<polyline class="series" points="{points}" fill="none" stroke="{colour_}" '
            f'stroke-width="2"{dash_attr}><title>{escape(one.name)}</title></polyline>'
        )
        if n <= 31:
            parts += [
                f'<circle cx="{_fmt(xs[i])}" cy="{_fmt(TOP + plot_h - plot_h * v / top_value)}" '
                f'r="2.5" fill="{colour_}"/>'
                for i, v in enumerate(one.values)
            ]
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above


def stacked_bar_chart(
    chart_id: str, title: str, desc: str, labels: Sequence[str], series: Sequence[Series]
) -> Markup:
    """One bar per label, the series stacked bottom-up in palette order."""
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    n = len(labels)
    totals = [sum(s.values[i] for s in series) for i in range(n)]
    top_value, step = nice_scale(max(totals, default=0))
    slot = plot_w / max(n, 1)
    bar_w = max(1.0, slot * 0.7)
    xs = [LEFT + slot * i + slot / 2 for i in range(n)]
    parts = _open(chart_id, title, desc)
    parts += _y_axis(top_value, step, plot_h)
    parts += _x_labels(labels, xs, plot_h)
    for i in range(n):
        base = 0.0
        for index, one in enumerate(series):
            value = one.values[i]
            if value <= 0:
                continue
            height = plot_h * value / top_value
            y = TOP + plot_h - plot_h * base / top_value - height
            parts.append(
                f'<rect x="{_fmt(xs[i] - bar_w / 2)}" y="{_fmt(y)}" width="{_fmt(bar_w)}" '
                f'height="{_fmt(height)}" fill="{colour(index)}">'
                f"<title>{escape(labels[i])}: {escape(one.name)} {escape(_fmt(value))}</title>"
                "</rect>"
            )
            base += value
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above


def funnel_chart(chart_id: str, title: str, desc: str, bars: Sequence[Bar]) -> Markup:
    """Horizontal bars, widest first: a funnel whose bars may link somewhere."""
    row, note_w = 34, 190
    # Room for the longest label (bold, ~8 units a character at font-size 12): a fixed
    # 70 cut German's "Gewonnen" at the picture's left edge. Capped so bars keep room.
    longest = max((len(bar.label) for bar in bars), default=0)
    label_w = min(200, max(70, 16 + 8 * longest))
    height = TOP + row * len(bars) + 4
    plot_w = WIDTH - label_w - note_w - RIGHT
    top_value = max((b.value for b in bars), default=0) or 1
    role = "group" if any(bar.href for bar in bars) else "img"
    parts = _open(chart_id, title, desc, height, role)
    for i, bar in enumerate(bars):
        y = TOP + row * i
        width = max(2.0, plot_w * bar.value / top_value) if bar.value else 0.0
        x = label_w + (plot_w - width) / 2
        shape = (
            f'<text x="{label_w - 8}" y="{y + 19}" text-anchor="end" fill="{TEXT}" '
            f'font-weight="600">{escape(bar.label)}</text>'
            f'<rect x="{_fmt(x)}" y="{y + 4}" width="{_fmt(width)}" height="{row - 8}" '
            f'fill="{colour(0)}" rx="3"/>'
            f'<text x="{label_w + plot_w + 8}" y="{y + 19}" fill="{TEXT}">'
            f"{escape(bar.note)}</text>"
        )
        if bar.href:
            shape = f'<a href="{escape(bar.href)}">{shape}</a>'
        parts.append(shape)
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - every interpolated text is escaped above


def legend(series_names: Sequence[str]) -> Markup:
    """A legend as an HTML list (swatch + dash pattern + name)."""
    items = []
    for index, name in enumerate(series_names):
        colour_, dash = PALETTE[index % len(PALETTE)]
        dash_attr = f' stroke-dasharray="{dash}"' if dash else ""
        items.append(
            '<li><svg width="28" height="10" aria-hidden="true" focusable="false">'
            f'<line x1="0" x2="28" y1="5" y2="5" stroke="{colour_}" stroke-width="3"{dash_attr}/>'
            f"</svg> {escape(name)}</li>"
        )
    return Markup(f'<ul class="legend">{"".join(items)}</ul>')  # noqa: S704 - escaped above


def data_table(
    caption: str,
    headers: Sequence[str],
    rows: Sequence[Sequence[str | Markup]],
) -> Markup:
    """The chart's numbers as a table (the text alternative for screen readers and print).

    Cells are escaped unless they are ``Markup`` (a link the caller built safely).
    """
    head = "".join(f'<th scope="col">{escape(h)}</th>' for h in headers)
    body = []
    for row in rows:
        first, *rest = row
        cells = f'<th scope="row">{escape(first)}</th>' + "".join(
            f'<td class="num">{escape(cell)}</td>' for cell in rest
        )
        body.append(f"<tr>{cells}</tr>")
    return Markup(  # noqa: S704 - every cell is escaped (or Markup from the caller)
        f'<table class="data"><caption>{escape(caption)}</caption>'
        f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
    )
