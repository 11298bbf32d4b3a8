"""Charts drawn on the server as SVG (no chart library, nothing fetched): a monthly line with an optional
reference band, and a member's two-year timeline. Every chart has a title and a text alternative; the
numbers are also in a table beside it."""

from __future__ import annotations

import datetime as dt
from html import escape

W, H, PAD_L, PAD_R, PAD_T, PAD_B = 360, 150, 46, 10, 12, 26


def _fmt(v: float) -> str:
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:,.1f}" if abs(v) >= 10 else f"{v:,.2f}"


def line(title: str, months: list[str], values: list[float | None], band: tuple[float, float] | None = None) -> str:
    """A line over months; ``band`` (low, high) drawn as a shaded range; missing values leave gaps."""
    known = [v for v in values if v is not None]
    if not known:
        return f'<p class="muted">{escape(title)}: no data.</p>'
    lo = min(known + ([band[0]] if band else []))
    hi = max(known + ([band[1]] if band else []))
    lo, hi = (0.0, hi * 1.1) if lo >= 0 else (lo * 1.1, hi * 1.1)
    hi = hi if hi > lo else lo + 1
    n = len(months)

    def x(i: int) -> float:
        return PAD_L + (W - PAD_L - PAD_R) * (i / max(n - 1, 1))

    def y(v: float) -> float:
        return PAD_T + (H - PAD_T - PAD_B) * (1 - (v - lo) / (hi - lo))

    parts = [f'<svg viewBox="0 0 {W} {H}" class="chart" role="img" aria-label="{escape(title)}">',
             f"<title>{escape(title)}</title>"]
    if band:
        parts.append(f'<rect class="band" x="{PAD_L}" y="{y(band[1]):.1f}" width="{W - PAD_L - PAD_R}" '
                     f'height="{max(y(band[0]) - y(band[1]), 1):.1f}"><title>reference range {_fmt(band[0])} to '
                     f'{_fmt(band[1])}</title></rect>')
    for v in (lo, (lo + hi) / 2, hi):
        parts.append(f'<line class="gridline" x1="{PAD_L}" x2="{W - PAD_R}" y1="{y(v):.1f}" y2="{y(v):.1f}"/>'
                     f'<text class="tick" x="{PAD_L - 4}" y="{y(v) + 4:.1f}" text-anchor="end">{_fmt(v)}</text>')
    for i in sorted({0, n // 2, n - 1}):
        anchor = "start" if i == 0 else "end" if i == n - 1 else "middle"
        parts.append(f'<text class="tick" x="{x(i):.1f}" y="{H - 8}" text-anchor="{anchor}">{escape(months[i])}</text>')
    path, pen = [], "M"
    for i, v in enumerate(values):
        if v is None:
            pen = "M"
            continue
        path.append(f"{pen}{x(i):.1f},{y(v):.1f}")
        pen = "L"
    parts.append(f'<path class="series" d="{" ".join(path)}"/>')
    for i, v in enumerate(values):
        if v is not None:
            parts.append(f'<circle class="dot" cx="{x(i):.1f}" cy="{y(v):.1f}" r="2"><title>{escape(months[i])}: '
                         f"{_fmt(v)}</title></circle>")
    parts.append("</svg>")
    return "".join(parts)


def timeline(tl: dict, width: int = 900) -> str:
    """Admissions as bars over their stay, emergency visits as diamonds, key labs as dots (abnormal ones
    filled red), over the timeline's two years."""
    start, end = tl["start"], tl["end"]
    span = (end - start).total_seconds() or 1.0
    left, right, rows = 110, 12, {"Admissions": 26, "Emergency": 58, "Labs": 90}

    def x(t: dt.datetime) -> float:
        return left + (width - left - right) * max(0.0, min(1.0, (t - start).total_seconds() / span))

    parts = [f'<svg viewBox="0 0 {width} 124" class="timeline" role="img" aria-label="Two-year timeline: '
             f'{len(tl["stays"])} admissions, {len(tl["ed"])} emergency visits, {len(tl["labs"])} key lab '
             'results (listed in the table below)">']
    for label, yy in rows.items():
        parts.append(f'<text class="tick" x="4" y="{yy + 4}">{label}</text>'
                     f'<line class="gridline" x1="{left}" x2="{width - right}" y1="{yy}" y2="{yy}"/>')
    year = start.replace(year=start.year + 1, month=1, day=1, hour=0, minute=0, second=0, microsecond=0)
    while year < end:
        parts.append(f'<line class="gridline year" x1="{x(year):.1f}" x2="{x(year):.1f}" y1="10" y2="104"/>'
                     f'<text class="tick" x="{x(year):.1f}" y="118" text-anchor="middle">{year.year}</text>')
        year = year.replace(year=year.year + 1)
    for s in tl["stays"]:
        x0, x1 = x(s["admit"]), x(s["discharge"] or end)
        parts.append(f'<rect class="stay" x="{x0:.1f}" y="{rows["Admissions"] - 7}" width="{max(x1 - x0, 3):.1f}" '
                     f'height="14"><title>admitted {s["admit"]:%Y-%m-%d}, {s["days"] if s["days"] is not None else "?"}'
                     f' days: {escape(s["dx"])}</title></rect>')
    for e in tl["ed"]:
        cx, cy = x(e["time"]), rows["Emergency"]
        diamond = f"M{cx:.1f},{cy - 6} L{cx + 6:.1f},{cy} L{cx:.1f},{cy + 6} L{cx - 6:.1f},{cy}Z"
        parts.append(f'<path class="ed" d="{diamond}">'
                     f'<title>emergency visit {e["time"]:%Y-%m-%d}: {escape(e["dx"])}</title></path>')
    for r in tl["labs"]:
        cls = "lab abnormal" if r["abnormal"] else "lab"
        parts.append(f'<circle class="{cls}" cx="{x(r["time"]):.1f}" cy="{rows["Labs"]}" r="4">'
                     f'<title>{escape(r["lab"])} '
                     f'{r["value"]:g} {escape(r["unit"])} on {r["time"]:%Y-%m-%d}'
                     f'{" (abnormal)" if r["abnormal"] else ""}</title></circle>')
    parts.append("</svg>")
    return "".join(parts)
