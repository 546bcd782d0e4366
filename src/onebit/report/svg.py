"""The report's charts as inline SVG: line charts, grouped and horizontal bars, a confusion heatmap.

Written directly (no plotting library): a chart is a few hundred bytes of vector markup that
the browser draws sharp at any zoom and on paper, and costs microseconds to make, so the
report written at the end of every training stays cheap. Each chart scales to its column
(``viewBox`` with ``width: 100%`` up to its natural size); text is escaped; colours keep
apart in grey print (solid vs dashed lines, plain vs hatched bars).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

__all__ = ["PALETTE", "grouped_bars", "hbars", "heatmap", "line_chart", "nice_ticks"]

PALETTE = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860")
_DASH = ("", "6 4", "2 3", "8 3 2 3")
_FONT = 'font-family="system-ui, DejaVu Sans, sans-serif"'


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """About ``count`` round tick values (1, 2, 2.5 or 5 × 10^k apart) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0, 1.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    start = math.floor(lo / step + 1e-9) * step
    ticks, v = [], start
    while v <= hi + step * 1e-9:
        ticks.append(round(v, 12))
        v += step
    if ticks[-1] < hi - step * 1e-9:
        ticks.append(round(v, 12))
    return ticks


def _label(v: float) -> str:
    if v == int(v) and abs(v) < 1e15:
        return f"{int(v):,}"
    return f"{v:.3g}"


def _t(x: float, y: float, text: str, *, size: int = 11, anchor: str = "middle", extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" text-anchor="{anchor}" {_FONT} {extra}>'
            f"{html.escape(text)}</text>")


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    return (f'<svg class="chart" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
            f'aria-label="{html.escape(title)}" style="max-width:100%;height:auto">'
            f'<rect width="{width}" height="{height}" fill="#fff"/>{"".join(body)}</svg>')


class _Frame:
    """A plotting area with linear x and y scales, its axes, ticks, grid and labels."""

    def __init__(self, width: int, height: int, x: tuple[float, float], y: tuple[float, float], *,
                 left: int = 58, right: int = 14, top: int = 28, bottom: int = 44):
        self.w, self.h = width, height
        self.x0, self.x1, self.y0, self.y1 = left, width - right, top, height - bottom
        self.xlo, self.xhi = x if x[1] > x[0] else (x[0] - 0.5, x[0] + 0.5)
        self.ylo, self.yhi = y if y[1] > y[0] else (y[0] - 0.5, y[0] + 0.5)

    def px(self, v: float) -> float:
        return self.x0 + (v - self.xlo) / (self.xhi - self.xlo) * (self.x1 - self.x0)

    def py(self, v: float) -> float:
        return self.y1 - (v - self.ylo) / (self.yhi - self.ylo) * (self.y1 - self.y0)

    def axes(self, title: str, xlabel: str, ylabel: str, xticks: Sequence[float] | None,
             yticks: Sequence[float]) -> list[str]:
        out = [_t(self.w / 2, 17, title, size=13, extra='font-weight="600"')]
        for v in yticks:
            y = self.py(v)
            out.append(f'<line x1="{self.x0}" x2="{self.x1}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e3e6ea"/>')
            out.append(_t(self.x0 - 5, y + 4, _label(v), size=10, anchor="end"))
        for v in xticks or ():
            x = self.px(v)
            out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{self.y0}" y2="{self.y1}" stroke="#eef0f3"/>')
            out.append(_t(x, self.y1 + 14, _label(v), size=10))
        out.append(f'<rect x="{self.x0}" y="{self.y0}" width="{self.x1 - self.x0}" height="{self.y1 - self.y0}" '
                   f'fill="none" stroke="#555"/>')
        out.append(_t((self.x0 + self.x1) / 2, self.h - 8, xlabel, size=11))
        cy = (self.y0 + self.y1) / 2
        out.append(_t(14, cy, ylabel, size=11, extra=f'transform="rotate(-90 14 {cy:.1f})"'))
        return out


def _legend(x: float, y: float, items: Sequence[tuple[str, str, str]]) -> list[str]:
    """Legend rows (label, colour, dash) from (x, y) downwards, on a white box."""
    width = 30 + 6.2 * max((len(label) for label, _, _ in items), default=0)
    out = [f'<rect x="{x:.1f}" y="{y:.1f}" width="{width:.1f}" height="{6 + 15 * len(items)}" fill="#fff" '
           f'fill-opacity="0.85" stroke="#ccc"/>']
    for i, (label, colour, dash) in enumerate(items):
        yy = y + 12 + 15 * i
        out.append(f'<line x1="{x + 5:.1f}" x2="{x + 23:.1f}" y1="{yy - 4:.1f}" y2="{yy - 4:.1f}" stroke="{colour}" '
                   f'stroke-width="2.5" stroke-dasharray="{dash}"/>')
        out.append(_t(x + 27, yy, label, size=10, anchor="start"))
    return out


def _swatches(x: float, y: float, items: Sequence[tuple[str, str, str]]) -> list[str]:
    """Legend entries in one row from (x, y): a short line in each colour and its label."""
    out, step = [], 30 + 6.2 * max((len(label) for label, _, _ in items), default=0)
    for i, (label, colour, dash) in enumerate(items):
        xx = x + i * step
        out.append(f'<rect x="{xx:.1f}" y="{y - 8:.1f}" width="14" height="10" fill="{colour}" '
                   f'stroke="{colour}" stroke-dasharray="{dash}"/>')
        out.append(_t(xx + 18, y + 1, label, size=10, anchor="start"))
    return out


def line_chart(series: dict[str, tuple[Sequence[float], Sequence[float]]], *, title: str, xlabel: str,
               ylabel: str, vline: tuple[float, str] | None = None, width: int = 540, height: int = 300,
               integer_x: bool = True, markers: bool = False) -> str:
    """Lines (x values, y values) per label; ``vline=(x, label)`` draws a dotted marker line."""
    xs = [x for xv, _ in series.values() for x in xv]
    ys = [y for _, yv in series.values() for y in yv if y is not None and math.isfinite(y)]
    if not xs or not ys:
        return _svg(width, 60, [_t(width / 2, 35, f"{title}: no data", size=12)], title)
    xt = nice_ticks(min(xs), max(xs), 6)
    if integer_x:
        xt = [v for v in xt if v == int(v)] or xt
    yt = nice_ticks(min(ys), max(ys), 5)
    f = _Frame(width, height, (min(xs), max(xs)), (yt[0], yt[-1]))
    body = f.axes(title, xlabel, ylabel, xt, yt)
    legend = []
    for i, (label, (xv, yv)) in enumerate(series.items()):
        colour, dash = PALETTE[i % len(PALETTE)], _DASH[i % len(_DASH)]
        points = " ".join(f"{f.px(x):.1f},{f.py(y):.1f}" for x, y in zip(xv, yv) if y is not None and math.isfinite(y))
        body.append(f'<polyline points="{points}" fill="none" stroke="{colour}" stroke-width="2" '
                    f'stroke-dasharray="{dash}"/>')
        if markers or len(xv) == 1:
            body += [f'<circle cx="{f.px(x):.1f}" cy="{f.py(y):.1f}" r="3" fill="{colour}"/>' for x, y in zip(xv, yv)]
        legend.append((label, colour, dash))
    if vline is not None:
        x = f.px(vline[0])
        body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{f.y0}" y2="{f.y1}" stroke="#777" stroke-dasharray="2 3"/>')
        legend.append((vline[1], "#777", "2 3"))
    body += _legend(f.x1 - 8 - (30 + 6.2 * max(len(l[0]) for l in legend)), f.y0 + 6, legend)
    return _svg(width, height, body, title)


def grouped_bars(categories: Sequence[str], groups: dict[str, Sequence[float]], *, title: str, ylabel: str,
                 ymin: float | None = None, ymax: float | None = None, width: int = 1000, height: int = 290) -> str:
    """One bar per group in each category (e.g. per-class accuracy of PyTorch and of the engine)."""
    values = [v for vs in groups.values() for v in vs if v is not None and math.isfinite(v)]
    lo = ymin if ymin is not None else min(values, default=0.0)
    hi = ymax if ymax is not None else max(values, default=1.0)
    yt = nice_ticks(lo, hi, 5)
    n = max(1, len(categories))
    rotate = n > 12 or max((len(c) for c in categories), default=0) * n > 110
    f = _Frame(width, height, (0, n), (yt[0], yt[-1]), top=40, bottom=58 if rotate else 30)
    body = f.axes(title, "", ylabel, None, yt)
    body.append('<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
                'patternTransform="rotate(45)"><rect width="6" height="6" fill="#dd8452"/>'
                '<line x1="0" y1="0" x2="0" y2="6" stroke="#fff" stroke-width="2"/></pattern></defs>')
    slot = (f.x1 - f.x0) / n
    bar = 0.8 * slot / max(1, len(groups))
    legend = []
    for g, (label, vs) in enumerate(groups.items()):
        fill = PALETTE[0] if g % 2 == 0 else "url(#hatch)"
        for i, v in enumerate(vs):
            if v is None or not math.isfinite(v):
                continue
            top = f.py(max(min(v, yt[-1]), yt[0]))
            x = f.x0 + i * slot + 0.1 * slot + g * bar
            body.append(f'<rect x="{x:.1f}" y="{top:.1f}" width="{bar:.1f}" height="{f.y1 - top:.1f}" fill="{fill}">'
                        f"<title>{html.escape(f'{categories[i]}, {label}: {v:.4g}')}</title></rect>")
        legend.append((label, PALETTE[g % 2], "" if g % 2 == 0 else "4 2"))
    for i, c in enumerate(categories):
        x = f.x0 + (i + 0.5) * slot
        extra = f'transform="rotate(-45 {x:.1f} {f.y1 + 14:.1f})"' if rotate else ""
        body.append(_t(x, f.y1 + 14, c[:18], size=10, anchor="end" if rotate else "middle", extra=extra))
    if legend:  # above the bars, right of the title: it must not hide a bar
        legend_w = 30 + 6.2 * max(len(l[0]) for l in legend)
        body += _swatches(f.x1 - legend_w * len(legend), 24, legend)
    return _svg(width, height, body, title)


def heatmap(matrix: Sequence[Sequence[int]], names: Sequence[str], *, title: str, xlabel: str = "predicted",
            ylabel: str = "true", size: int = 420) -> str:
    """A square count matrix as shaded cells (white → dark blue), counts written where ≤ 20 classes."""
    n = len(names)
    left, top = 64, 30
    cell = (size - left - 10) / max(1, n)
    height = int(top + cell * n + 50)
    peak = max((v for row in matrix for v in row), default=0) or 1
    body = [_t(left + cell * n / 2, 18, title, size=12, extra='font-weight="600"')]
    step = max(1, math.ceil(n / 20))
    for i in range(n):
        for j in range(n):
            v = matrix[i][j]
            level = v / peak
            r, g, b = (int(247 - level * (247 - c)) for c in (8, 48, 107))
            x, y = left + j * cell, top + i * cell
            body.append(f'<rect x="{x:.1f}" y="{y:.1f}" width="{cell:.2f}" height="{cell:.2f}" '
                        f'fill="rgb({r},{g},{b})"><title>{html.escape(f"true {names[i]}, predicted {names[j]}: {v}")}'
                        f"</title></rect>")
            if n <= 20 and v:
                colour = "#fff" if level > 0.5 else "#111"
                body.append(_t(x + cell / 2, y + cell / 2 + 4, str(v), size=10 if n <= 12 else 8,
                               extra=f'fill="{colour}"'))
    for i in range(0, n, step):
        body.append(_t(left - 5, top + (i + 0.5) * cell + 4, names[i][:10], size=10, anchor="end"))
        body.append(_t(left + (i + 0.5) * cell, top + n * cell + 14, names[i][:6], size=10))
    body.append(f'<rect x="{left}" y="{top}" width="{cell * n:.1f}" height="{cell * n:.1f}" fill="none" '
                f'stroke="#555"/>')
    body.append(_t(left + cell * n / 2, top + n * cell + 34, xlabel, size=11))
    cy = top + cell * n / 2
    body.append(_t(14, cy, ylabel, size=11, extra=f'transform="rotate(-90 14 {cy:.1f})"'))
    return _svg(size, height, body, title)


def hbars(labels: Sequence[str], values: Sequence[float], *, title: str, xlabel: str, colour: str = PALETTE[0],
          width: int = 540, fmt: str = "{:,.0f}", xmax: float | None = None) -> str:
    """Horizontal bars top to bottom in the given order, each value written after its bar."""
    row = 18
    left = 12 + 6.3 * max((len(label) for label in labels), default=4)
    height = int(34 + row * len(labels) + 40)
    hi = xmax if xmax is not None else max(values, default=1.0) * 1.2
    xt = nice_ticks(0.0, hi or 1.0, 5)
    f = _Frame(width, height, (0.0, xt[-1]), (0.0, 1.0), left=int(left), right=30, top=30, bottom=40)
    body = [_t(width / 2, 17, title, size=13, extra='font-weight="600"')]
    for v in xt:
        x = f.px(v)
        body.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{f.y0}" y2="{f.y1}" stroke="#eef0f3"/>')
        body.append(_t(x, f.y1 + 14, _label(v), size=10))
    for i, (label, v) in enumerate(zip(labels, values)):
        y = f.y0 + 3 + i * row
        w = max(0.0, f.px(v) - f.x0)
        fill = colour if not isinstance(colour, (list, tuple)) else colour[i % len(colour)]
        body.append(f'<rect x="{f.x0}" y="{y:.1f}" width="{w:.1f}" height="{row - 5}" fill="{fill}"/>')
        body.append(_t(f.x0 - 5, y + row - 8, label, size=10, anchor="end"))
        body.append(_t(f.x0 + w + 4, y + row - 8, fmt.format(v), size=10, anchor="start"))
    body.append(f'<line x1="{f.x0}" x2="{f.x0}" y1="{f.y0}" y2="{f.y1}" stroke="#555"/>')
    body.append(_t((f.x0 + f.x1) / 2, height - 8, xlabel, size=11))
    return _svg(width, height, body, title)
