"""Charts of the reports as SVG, drawn here in plain Python: nothing to download, nothing to install, works
offline. Every text that came from users (names, titles, sources) is escaped.

``chart(report_name, report)`` → an SVG document (str).
"""

from __future__ import annotations

import math
from decimal import Decimal
from xml.sax.saxutils import escape

WIDTH = 760
FONT = "font-family='DejaVu Sans, Arial, Helvetica, sans-serif'"
PALETTE = ("#2f6db5", "#e07b39", "#3a9a5b", "#c8423b", "#8a62b8", "#8c6d48", "#d4a72c")
GRID = "#e3e6ea"
INK = "#20262d"
MUTED = "#66717d"


def _text(x, y, value, size=12, anchor="start", colour=INK, weight="normal") -> str:
    return (f"<text x='{x:.1f}' y='{y:.1f}' font-size='{size}' text-anchor='{anchor}' fill='{colour}' "
            f"font-weight='{weight}' {FONT}>{escape(str(value))}</text>")


def _rect(x, y, w, h, colour, title=None) -> str:
    tip = f"<title>{escape(title)}</title>" if title else ""
    return f"<rect x='{x:.1f}' y='{y:.1f}' width='{max(w, 0):.1f}' height='{max(h, 0):.1f}' fill='{colour}'>{tip}</rect>"


def _document(height: int, title: str, subtitle: str, body: list[str]) -> str:
    head = [
        f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{height}' "
        f"viewBox='0 0 {WIDTH} {height}' role='img' aria-label='{escape(title, {chr(39): '&#39;'})}'>",
        f"<rect width='{WIDTH}' height='{height}' fill='#ffffff'/>",
        _text(20, 28, title, size=16, weight="bold"),
        _text(20, 46, subtitle, size=11, colour=MUTED),
    ]
    return "\n".join(head + body + ["</svg>"]) + "\n"


def _short(label, limit: int = 18) -> str:
    label = "—" if label in (None, "") else str(label)
    return label if len(label) <= limit else label[: limit - 1] + "…"


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exponent = math.floor(math.log10(value))
    fraction = value / 10**exponent
    for step in (1, 2, 2.5, 5, 10):
        if fraction <= step:
            return step * 10**exponent
    return 10 ** (exponent + 1)


def _number(value: float) -> str:
    if abs(value) >= 1_000_000:
        return f"{value / 1_000_000:.1f}M".replace(".0M", "M")
    if abs(value) >= 10_000:
        return f"{value / 1000:.0f}k"
    if float(value).is_integer():
        return f"{int(value)}"
    return f"{value:.2f}"


def _legend(series: list[tuple[str, str]], y: float) -> list[str]:
    out, x = [], 20.0
    for name, colour in series:
        out.append(_rect(x, y - 9, 10, 10, colour))
        out.append(_text(x + 14, y, name, size=11, colour=MUTED))
        x += 24 + 7 * len(name)
    return out


def _empty(title: str, subtitle: str, message: str = "No data for this period") -> str:
    return _document(160, title, subtitle, [_text(WIDTH / 2, 100, message, size=13, anchor="middle", colour=MUTED)])


def grouped_bars(title: str, subtitle: str, categories: list[str], series: list[tuple[str, list[float]]],
                 unit: str = "") -> str:
    """Vertical bars: one group per category, one bar per series."""
    if not categories or not any(v for _, values in series for v in values):
        return _empty(title, subtitle)
    height, top, bottom, left, right = 380, 80, 300, 70, WIDTH - 20
    peak = _nice_max(max(v for _, values in series for v in values))
    body = _legend([(name, PALETTE[i % len(PALETTE)]) for i, (name, _) in enumerate(series)], 66)
    for step in range(5):
        value = peak * step / 4
        y = bottom - (bottom - top) * step / 4
        body.append(f"<line x1='{left}' y1='{y:.1f}' x2='{right}' y2='{y:.1f}' stroke='{GRID}'/>")
        body.append(_text(left - 6, y + 4, _number(value), size=10, anchor="end", colour=MUTED))
    group = (right - left) / len(categories)
    bar = min(40.0, group * 0.8 / len(series))
    for index, category in enumerate(categories):
        start = left + group * index + (group - bar * len(series)) / 2
        for s, (name, values) in enumerate(series):
            value = values[index] or 0
            h = (bottom - top) * value / peak
            body.append(_rect(start + bar * s, bottom - h, bar - 2, h, PALETTE[s % len(PALETTE)],
                              f"{category}: {name} {_number(value)}{unit}"))
        body.append(_text(left + group * (index + 0.5), bottom + 16, _short(category, max(6, int(group / 7))),
                          size=10, anchor="middle"))
    body.append(f"<line x1='{left}' y1='{bottom}' x2='{right}' y2='{bottom}' stroke='{MUTED}'/>")
    return _document(height, title, subtitle, body)


def funnel_chart(title: str, subtitle: str, stages: list[dict]) -> str:
    """Bars centred on one axis and as wide as the stage's entries: the funnel narrows where deals are lost."""
    if not stages or not any(s["entered"] for s in stages):
        return _empty(title, subtitle)
    row, top, span = 38, 70, WIDTH - 400  # names on the left, bars in the middle, numbers on the right
    centre = 170 + span / 2
    peak = max(s["entered"] for s in stages)
    body = []
    for index, stage in enumerate(stages):
        y = top + row * index
        width = span * stage["entered"] / peak if peak else 0
        colour = {"won": PALETTE[2], "lost": PALETTE[3]}.get(stage.get("kind"), PALETTE[0])
        body.append(_rect(centre - width / 2, y, width, row - 8, colour,
                          f"{stage.get('name') or stage['stage_id']}: {stage['entered']} entered"))
        body.append(_text(20, y + 19, _short(stage.get("name") or "?", 22), size=12))
        conversion = stage.get("conversion")
        detail = f"{stage['entered']} in · {stage['moved_on']} on · {stage['lost']} lost"
        if conversion is not None:
            detail += f" · {conversion * 100:.0f}%"
        body.append(_text(WIDTH - 20, y + 19, detail, size=11, anchor="end", colour=MUTED))
    return _document(top + row * len(stages) + 10, title, subtitle, body)


def months_chart(title: str, subtitle: str, months: list[dict]) -> str:
    """The client base over months: the total as a line, new and archived clients as bars."""
    if not months or not any(m["total"] or m["new"] or m["archived"] for m in months):
        return _empty(title, subtitle)
    height, top, bottom, left, right = 380, 80, 300, 70, WIDTH - 20
    peak = _nice_max(max(max(m["total"], m["new"], m["archived"]) for m in months))
    body = _legend([("total", PALETTE[0]), ("new", PALETTE[2]), ("archived", PALETTE[3])], 66)
    for step in range(5):
        y = bottom - (bottom - top) * step / 4
        body.append(f"<line x1='{left}' y1='{y:.1f}' x2='{right}' y2='{y:.1f}' stroke='{GRID}'/>")
        body.append(_text(left - 6, y + 4, _number(peak * step / 4), size=10, anchor="end", colour=MUTED))
    slot = (right - left) / len(months)
    bar = min(18.0, slot * 0.35)
    points = []
    for index, month in enumerate(months):
        middle = left + slot * (index + 0.5)
        for offset, value, colour in ((-bar, month["new"], PALETTE[2]), (0, month["archived"], PALETTE[3])):
            h = (bottom - top) * value / peak
            body.append(_rect(middle + offset, bottom - h, bar - 1, h, colour, f"{month['month']}: {value}"))
        points.append((middle, bottom - (bottom - top) * month["total"] / peak))
        if len(months) <= 14 or index % max(1, len(months) // 12) == 0:
            body.append(_text(middle, bottom + 16, month["month"], size=10, anchor="middle"))
    path = " ".join(f"{'M' if i == 0 else 'L'}{x:.1f},{y:.1f}" for i, (x, y) in enumerate(points))
    body.append(f"<path d='{path}' fill='none' stroke='{PALETTE[0]}' stroke-width='2.5'/>")
    for (x, y), month in zip(points, months):
        body.append(f"<circle cx='{x:.1f}' cy='{y:.1f}' r='3' fill='{PALETTE[0]}'>"
                    f"<title>{escape(month['month'])}: {month['total']} clients</title></circle>")
    body.append(f"<line x1='{left}' y1='{bottom}' x2='{right}' y2='{bottom}' stroke='{MUTED}'/>")
    return _document(height, title, subtitle, body)


def _amount(value) -> float:
    return float(Decimal(value)) if value not in (None, "") else 0.0


def _currencies(lines: list[dict]) -> str:
    codes = sorted({line["currency"] for line in lines if line.get("currency")})
    return ", ".join(codes) if codes else "no currency"


def _period(report: dict) -> str:
    start, end = report.get("from"), report.get("to")
    return start if start == end else f"{start} – {end}"


def chart(name: str, report: dict) -> str:
    if name == "client_base":
        return months_chart("Client base", f"{_period(report)}: clients at each month's end, new and archived",
                            report["months"])
    if name == "funnel":
        title = f"Funnel: {report.get('name') or 'pipeline'}"
        return funnel_chart(title, f"{_period(report)}: stage entries, moved on and lost", report["stages"])
    if name == "plan":
        lines = report["managers"] or report["branches"]
        labels = [line.get("name") or line.get("user_id") or line.get("branch_id") for line in lines]
        return grouped_bars("Plan and fact", f"{report['month']} ({_currencies(lines)})", labels, [
            ("plan", [_amount(line["plan"]) for line in lines]), ("fact", [_amount(line["fact"]) for line in lines]),
        ])
    if name == "channels":
        lines = report["channels"]
        return grouped_bars("Channels: spend and revenue", f"{_period(report)} ({_currencies(lines)})",
                            [line["source"] or "no source" for line in lines], [
                                ("spend", [_amount(line["spend"]) for line in lines]),
                                ("revenue", [_amount(line["revenue"]) for line in lines]),
                            ])
    if name == "managers":
        lines = report["managers"]
        return grouped_bars("Managers: activity", report["month"], [line.get("name") or line["user_id"] for line in lines], [
            (label, [line[key] for line in lines]) for key, label in (
                ("calls", "calls"), ("meetings", "meetings"), ("deals_moved", "deals moved"),
                ("deals_won", "deals won"), ("tasks_done_on_time", "tasks on time"), ("tasks_overdue", "tasks overdue"),
            )
        ])
    if name == "scripts":
        lines = report["scripts"]
        return grouped_bars("Sales scripts: use", _period(report), [line.get("title") or line["script_id"] for line in lines], [
            ("uses", [line["uses"] for line in lines]), ("clients", [line["clients"] for line in lines]),
            ("deals won after a use", [line["deals_won"] for line in lines]),
        ])
    if name == "campaigns":
        lines = report["campaigns"]
        return grouped_bars("Campaigns: budget and revenue", f"{_period(report)} ({_currencies(lines)})",
                            [line.get("name") or line["campaign_id"] for line in lines], [
                                ("budget", [_amount((line.get("budget") or {}).get("amount")) for line in lines]),
                                ("revenue", [_amount(line["revenue"]) for line in lines]),
                            ])
    raise ValueError(f"no chart for {name!r}")
