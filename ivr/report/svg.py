"""Small server-side SVG charts for the dashboard: bars and a line, no JavaScript.

Every label and title is escaped here (the charts are inserted into pages as markup); each
chart carries role="img" and a <title>, and the page shows the same numbers in a table.
"""

from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 680, 220
PAD_L, PAD_R, PAD_T, PAD_B = 48, 12, 14, 62
COLOURS = {"bar": "#3f6fb5", "alt": "#c0504d", "line": "#2e7d4f", "grid": "#d8dde6", "text": "#445"}


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    step = 10 ** (len(str(int(value))) - 1)
    return float((int(value / step) + 1) * step)


def _frame(title: str, body: list[str], chart_id: str) -> Markup:
    return Markup(
        f'<svg class="chart" id="{escape(chart_id)}" role="img" aria-labelledby="{escape(chart_id)}-t" '
        f'viewBox="0 0 {WIDTH} {HEIGHT}" width="100%" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{escape(chart_id)}-t">{escape(title)}</title>' + "".join(body) + "</svg>")


def _axis(top: float, lo: float = 0.0, fmt: str = "{:g}") -> list[str]:
    out = []
    plot_h = HEIGHT - PAD_T - PAD_B
    for i in range(5):
        value = lo + (top - lo) * i / 4
        y = PAD_T + plot_h - plot_h * i / 4
        out.append(f'<line x1="{PAD_L}" x2="{WIDTH - PAD_R}" y1="{y:.1f}" y2="{y:.1f}" stroke="{COLOURS["grid"]}"/>'
                   f'<text x="{PAD_L - 6}" y="{y + 4:.1f}" font-size="11" text-anchor="end" '
                   f'fill="{COLOURS["text"]}">{escape(fmt.format(value))}</text>')
    return out


def _labels(labels: list[str], x_of, every: int) -> list[str]:
    out = []
    for i, label in enumerate(labels):
        if i % every:
            continue
        x = x_of(i)
        out.append(f'<text x="{x:.1f}" y="{HEIGHT - PAD_B + 14}" font-size="10" text-anchor="end" '
                   f'transform="rotate(-35 {x:.1f} {HEIGHT - PAD_B + 14})" fill="{COLOURS["text"]}">'
                   f'{escape(label)}</text>')
    return out


def bars(items: list[tuple[str, float]], title: str, chart_id: str, colour: str = "bar") -> Markup:
    """Vertical bars, one per (label, value); each bar has a <title> tooltip with its value."""
    if not items:
        return Markup("")
    top = _nice_max(max(v for _, v in items))
    plot_w, plot_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B
    slot = plot_w / len(items)
    width = max(1.0, slot * 0.8)
    body = _axis(top)
    for i, (label, value) in enumerate(items):
        h = plot_h * value / top
        x = PAD_L + slot * i + (slot - width) / 2
        body.append(f'<rect class="bar" x="{x:.1f}" y="{PAD_T + plot_h - h:.1f}" width="{width:.1f}" '
                    f'height="{h:.1f}" fill="{COLOURS[colour]}" data-value="{value:g}">'
                    f'<title>{escape(label)}: {value:g}</title></rect>')
    every = max(1, len(items) // 24)
    body += _labels([label for label, _ in items], lambda i: PAD_L + slot * i + slot / 2 + 3, every)
    return _frame(title, body, chart_id)


def line(points: list[tuple[str, float]], title: str, chart_id: str, lo: float = -1.0, hi: float = 1.0) -> Markup:
    """A line over (label, value) points between `lo` and `hi`, with a dot per point."""
    if not points:
        return Markup("")
    plot_w, plot_h = WIDTH - PAD_L - PAD_R, HEIGHT - PAD_T - PAD_B
    step = plot_w / max(1, len(points) - 1)

    def xy(i: int, value: float) -> tuple[float, float]:
        return PAD_L + (step * i if len(points) > 1 else plot_w / 2), PAD_T + plot_h * (hi - value) / (hi - lo)

    body = _axis(hi, lo, "{:+.1f}")
    coords = [xy(i, v) for i, (_, v) in enumerate(points)]
    body.append(f'<polyline fill="none" stroke="{COLOURS["line"]}" stroke-width="2" points="'
                + " ".join(f"{x:.1f},{y:.1f}" for x, y in coords) + '"/>')
    for (label, value), (x, y) in zip(points, coords, strict=True):
        body.append(f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{COLOURS["line"]}" '
                    f'data-value="{value:g}"><title>{escape(label)}: {value:+.3f}</title></circle>')
    every = max(1, len(points) // 24)
    body += _labels([label for label, _ in points], lambda i: coords[i][0] + 3, every)
    return _frame(title, body, chart_id)


def hbars(items: list[tuple[str, float]], title: str, chart_id: str, colour: str = "bar") -> Markup:
    """Horizontal bars with their labels on the left (names too long for the x axis)."""
    if not items:
        return Markup("")
    row_h, label_w = 22, 260
    height = PAD_T + row_h * len(items) + 8
    top = _nice_max(max(v for _, v in items))
    plot_w = WIDTH - label_w - PAD_R - 40
    body = []
    for i, (label, value) in enumerate(items):
        y = PAD_T + row_h * i
        w = plot_w * value / top
        short = label if len(label) <= 40 else label[:39] + "…"
        body.append(f'<text x="{label_w - 6}" y="{y + 15}" font-size="12" text-anchor="end" fill="{COLOURS["text"]}">'
                    f'{escape(short)}</text>'
                    f'<rect class="bar" x="{label_w}" y="{y + 3}" width="{max(w, 1):.1f}" height="{row_h - 6}" '
                    f'fill="{COLOURS[colour]}" data-value="{value:g}"><title>{escape(label)}: {value:g}</title></rect>'
                    f'<text x="{label_w + w + 4:.1f}" y="{y + 15}" font-size="11" fill="{COLOURS["text"]}">'
                    f'{value:g}</text>')
    return Markup(f'<svg class="chart" id="{escape(chart_id)}" role="img" aria-labelledby="{escape(chart_id)}-t" '
                  f'viewBox="0 0 {WIDTH} {height}" width="100%" xmlns="http://www.w3.org/2000/svg">'
                  f'<title id="{escape(chart_id)}-t">{escape(title)}</title>' + "".join(body) + "</svg>")
