"""Charts as inline SVG, rendered on the server by pure functions (no script, no image files)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

# Category colours that keep 3:1 contrast against white (WCAG non-text contrast).
COLOURS: Mapping[str, str] = {
    "missed": "#b91c1c",
    "offline": "#7c3aed",
    "low-rated": "#b45309",
    "normal": "#1d4ed8",
}
OTHER = "#475569"
INK = "#0f172a"
GRID = "#cbd5e1"


@dataclass(frozen=True)
class Series:
    """One stacked part of a bar chart: its label, colour and one value per bar."""

    label: str
    colour: str
    values: tuple[float, ...]


def _svg(width: int, height: int, title: str, body: list[str]) -> Markup:
    text = escape(title)
    return Markup(  # noqa: S704 -- every piece of text in ``body`` was escaped where it was made
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}"'
        f' width="{width}" height="{height}" role="img" aria-label="{text}" class="chart">'
        f"<title>{text}</title>{''.join(body)}</svg>"
    )


def stacked_bars(
    title: str, labels: Sequence[str], series: Sequence[Series], *, height: int = 220
) -> Markup:
    """Vertical bars, one per label, each stacked from ``series`` bottom up; the largest total
    fills the height. Every bar has a tooltip title naming its parts."""
    width = max(320, 24 * len(labels) + 48)
    top, bottom, left = 12, 40, 36
    plot = height - top - bottom
    totals = [sum(s.values[i] for s in series) for i in range(len(labels))]
    peak = max(totals, default=0) or 1
    step = (width - left - 8) / max(len(labels), 1)
    body = [
        f'<line x1="{left}" y1="{top + plot}" x2="{width - 8}" y2="{top + plot}" stroke="{GRID}"/>',
        f'<text x="{left - 4}" y="{top + 10}" text-anchor="end" font-size="11" fill="{INK}">'
        f"{_number(peak)}</text>",
        f'<text x="{left - 4}" y="{top + plot}" text-anchor="end" font-size="11" fill="{INK}">'
        "0</text>",
    ]
    every = max(1, len(labels) // 10)
    for i, label in enumerate(labels):
        x = left + i * step + step * 0.15
        y: float = top + plot
        parts = []
        for s in series:
            value = s.values[i]
            if value <= 0:
                continue
            h = plot * value / peak
            y -= h
            parts.append(f"{escape(s.label)}: {_number(value)}")
            body.append(
                f'<rect x="{x:.1f}" y="{y:.1f}" width="{step * 0.7:.1f}" height="{h:.1f}"'
                f' fill="{s.colour}"><title>{escape(label)} · {escape(s.label)}:'
                f" {_number(value)}</title></rect>"
            )
        if i % every == 0:
            body.append(
                f'<text x="{x + step * 0.35:.1f}" y="{height - bottom + 16}" font-size="11"'
                f' text-anchor="middle" fill="{INK}">{escape(label)}</text>'
            )
    return _svg(width, height, title, body)


def heatmap(
    title: str,
    rows: Sequence[str],
    columns: Sequence[str],
    shares: Sequence[Sequence[float | None]],
) -> Markup:
    """A grid of cells, one per (row, column), shaded by a share in [0, 1] (None: no data);
    each cell's title says its share in percent."""
    cell, left, top = 22, 44, 22
    width = left + cell * len(columns) + 4
    height = top + cell * len(rows) + 4
    body = []
    for c, label in enumerate(columns):
        if c % 3 == 0:
            body.append(
                f'<text x="{left + c * cell + cell / 2:.1f}" y="{top - 8}" font-size="10"'
                f' text-anchor="middle" fill="{INK}">{escape(label)}</text>'
            )
    for r, label in enumerate(rows):
        y = top + r * cell
        body.append(
            f'<text x="{left - 6}" y="{y + cell * 0.7:.1f}" font-size="11" text-anchor="end"'
            f' fill="{INK}">{escape(label)}</text>'
        )
        for c, share in enumerate(shares[r]):
            shown = "-" if share is None else f"{share * 100:.0f} %"
            body.append(
                f'<rect x="{left + c * cell}" y="{y}" width="{cell - 2}" height="{cell - 2}"'
                f' fill="{_shade(share)}"><title>{escape(label)} {escape(columns[c])}:'
                f" {shown}</title></rect>"
            )
    return _svg(width, height, title, body)


def horizontal_bars(title: str, items: Sequence[tuple[str, float]], colour: str = OTHER) -> Markup:
    """One labelled horizontal bar per item, the largest filling the width, value at its end."""
    row, left, width = 26, 110, 420
    height = row * len(items) + 8
    peak = max((value for _, value in items), default=0) or 1
    body = []
    for i, (label, value) in enumerate(items):
        y = 4 + i * row
        w = (width - left - 50) * value / peak
        body.append(
            f'<text x="{left - 8}" y="{y + 16}" font-size="12" text-anchor="end"'
            f' fill="{INK}">{escape(label)}</text>'
            f'<rect x="{left}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" fill="{colour}">'
            f"<title>{escape(label)}: {_number(value)}</title></rect>"
            f'<text x="{left + w + 6:.1f}" y="{y + 16}" font-size="12" fill="{INK}">'
            f"{_number(value)}</text>"
        )
    return _svg(width, height, title, body)


def _shade(share: float | None) -> str:
    """White through to dark red by share; a light grey for no data."""
    if share is None:
        return "#f1f5f9"
    share = min(max(share, 0.0), 1.0)
    low, high = (254, 242, 242), (153, 27, 27)
    r, g, b = (round(lo + (hi - lo) * share) for lo, hi in zip(low, high, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def _number(value: float) -> str:
    return f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
