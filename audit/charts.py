"""Server-drawn SVG charts for the Security overview: no script, no CDN, nothing for the CSP to block.

Colours and fonts come from classes styled by ``audit/admin/overview.css``; every
bar carries a ``<title>`` (the browser shows it on hover) with its bucket and count.
All text is escaped.
"""

from __future__ import annotations

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from audit.overview import BarChart, TimeChart

WIDTH, HEIGHT = 640, 190
LEFT, RIGHT, TOP, BOTTOM = 40, 8, 10, 28


def _nice_max(value: int) -> int:
    """A round axis maximum at or above ``value`` (1, 2, 5 x 10^n)."""
    if value <= 4:
        return max(value, 1)
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return value


def _label(bucket, chart: TimeChart) -> str:
    if len(chart.buckets) > 1 and (chart.buckets[1] - chart.buckets[0]).days >= 1:
        return bucket.strftime("%m-%d")
    return bucket.strftime("%H:%M") if len(chart.buckets) <= 24 else bucket.strftime("%m-%d %H:%M")


def time_chart(chart: TimeChart) -> SafeString:
    """Stacked bars, one per bucket, one colour per series."""
    n = len(chart.buckets)
    totals = [sum(s.values[i] for s in chart.series) for i in range(n)]
    top = _nice_max(max(totals, default=0))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(n, 1)
    bar_w = max(step * 0.8, 1)
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(chart.title)}" '
        f'data-total="{chart.total}">',
        f'<line class="axis" x1="{LEFT}" y1="{TOP + plot_h}" x2="{WIDTH - RIGHT}" y2="{TOP + plot_h}"/>',
        f'<line class="grid" x1="{LEFT}" y1="{TOP}" x2="{WIDTH - RIGHT}" y2="{TOP}"/>',
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + 4}" text-anchor="end">{top}</text>',
        f'<text class="tick" x="{LEFT - 4}" y="{TOP + plot_h}" text-anchor="end">0</text>',
    ]
    for i, bucket in enumerate(chart.buckets):
        x = LEFT + i * step + (step - bar_w) / 2
        y = TOP + plot_h
        when = bucket.strftime("%Y-%m-%d %H:%M UTC")
        for k, series in enumerate(chart.series):
            value = series.values[i]
            if not value:
                continue
            h = plot_h * value / top
            y -= h
            parts.append(
                f'<rect class="bar {series.css or f"s{k}"}" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" height="{h:.1f}">'
                f'<title>{escape(when)}: {escape(series.name)} {value}</title></rect>')
    ticks = sorted({0, n // 4, n // 2, (3 * n) // 4, n - 1}) if n > 1 else [0]
    for i in ticks:
        x = LEFT + i * step + step / 2
        parts.append(f'<text class="tick" x="{x:.1f}" y="{HEIGHT - 10}" text-anchor="middle">'
                     f'{escape(_label(chart.buckets[i], chart))}</text>')
    parts.append("</svg>")
    # Every text that went into the parts above was escaped.
    return mark_safe("".join(parts))  # noqa: S308  # nosec B308, B703


def bar_chart(chart: BarChart) -> SafeString:
    """Horizontal bars, one per label (rate-limit rules)."""
    rows = chart.bars or []
    row_h = 22
    height = max(len(rows), 1) * row_h + 8
    label_w = 170
    plot_w = WIDTH - label_w - 60
    top = max((n for _, n in rows), default=0) or 1
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {WIDTH} {height}" width="{WIDTH}" height="{height}" '
        f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(chart.title)}" '
        f'data-total="{sum(n for _, n in rows)}">',
    ]
    if not rows:
        parts.append(f'<text class="empty" x="{WIDTH / 2}" y="{height / 2 + 4}" text-anchor="middle">'
                     "None in this window</text>")
    for i, (label, value) in enumerate(rows):
        y = 4 + i * row_h
        w = max(plot_w * value / top, 1)
        parts.append(f'<text class="label" x="{label_w - 6}" y="{y + 15}" text-anchor="end">{escape(label)}</text>')
        parts.append(f'<rect class="bar s0" x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row_h - 6}">'
                     f'<title>{escape(label)}: {value}</title></rect>')
        parts.append(f'<text class="value" x="{label_w + w + 6:.1f}" y="{y + 15}">{value}</text>')
    parts.append("</svg>")
    # Every text that went into the parts above was escaped.
    return mark_safe("".join(parts))  # noqa: S308  # nosec B308, B703
