"""The reports as CSV (a header row, then one row per line item) and as SVG charts (``charts``)."""

from __future__ import annotations

import csv
import io

from reports import charts

CSV = "text/csv"
SVG = "image/svg+xml"
FORMATS = {"csv": CSV, "svg": SVG}

# a cell a spreadsheet would run as a formula is written with a leading apostrophe
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}" if abs(value) < 1e15 else str(value)
    text = str(value)
    if text.startswith(FORMULA_STARTS) and not _is_number(text):
        return "'" + text
    return text


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _amounts(items, amount="amount") -> str:
    return "; ".join(f"{item[amount]} {item['currency']}" for item in items or [])


def _others(items) -> str:
    parts = []
    for item in items or []:
        value = item.get("fact") or item.get("revenue")
        text = f"{value} {item['currency']} ({item.get('deals_won', 0)} won)"
        if item.get("spend") not in (None, "0.00"):
            text += f", spend {item['spend']}"
        parts.append(text)
    return "; ".join(parts)


def rows(name: str, report: dict) -> tuple[list[str], list[list]]:
    """The header and the rows of a report."""
    if name == "client_base":
        header = ["section", "key", "total", "new", "archived", "net"]
        out = [["month", m["month"], m["total"], m["new"], m["archived"], m["net"]] for m in report["months"]]
        out += [["source", s["source"], None, s["new"], None, None] for s in report["by_source"]]
        out += [["tag", t["tag"], t["total"], None, None, None] for t in report["by_tag"]]
        return header, out
    if name == "funnel":
        header = ["stage_id", "name", "kind", "position", "entered", "moved_on", "lost", "conversion", "median_days",
                  "mean_days"]
        return header, [[s[h] for h in header] for s in report["stages"]]
    if name == "plan":
        header = ["level", "branch_id", "user_id", "name", "plan_id", "plan", "currency", "fact", "deals_won",
                  "fulfilment", "miss_category", "miss_reason", "other_currencies"]
        out = []
        for level, lines in (("branch", report["branches"]), ("manager", report["managers"])):
            for line in lines:
                miss = line.get("miss_reason") or {}
                out.append([level, line.get("branch_id"), line.get("user_id"), line.get("name"), line["plan_id"],
                            line["plan"], line["currency"], line["fact"], line["deals_won"], line["fulfilment"],
                            miss.get("category"), miss.get("reason"), _others(line["other_currencies"])])
        return header, out
    if name == "channels":
        header = ["source", "touchpoints", "new_clients", "deals_won", "currency", "revenue", "spend", "roi",
                  "cost_per_client", "other_currencies"]
        return header, [[line[h] for h in header[:-1]] + [_others(line["other_currencies"])]
                        for line in report["channels"]]
    if name == "managers":
        header = ["user_id", "name", "branch_id", "calls", "meetings", "interactions", "tasks_done_on_time",
                  "tasks_overdue", "penalties", "penalty_amounts", "deals_moved", "deals_won", "revenue"]
        out = []
        for line in report["managers"]:
            values = dict(line, penalty_amounts=_amounts(line["penalty_amounts"]), revenue=_amounts(line["revenue"]))
            out.append([values[h] for h in header])
        return header, out
    if name == "scripts":
        header = ["script_id", "title", "uses", "clients", "deals_won"]
        return header, [[line[h] for h in header] for line in report["scripts"]]
    if name == "campaigns":
        header = ["campaign_id", "name", "segment_id", "channel", "starts_on", "ends_on", "audience", "touchpoints",
                  "new_clients", "deals_won", "currency", "revenue", "budget", "budget_currency", "roi",
                  "cost_per_client", "other_currencies"]
        out = []
        for line in report["campaigns"]:
            budget = line.get("budget") or {}
            values = dict(line, budget=budget.get("amount"), budget_currency=budget.get("currency"),
                          other_currencies=_others(line["other_currencies"]))
            out.append([values[h] for h in header])
        return header, out
    raise ValueError(f"no CSV layout for {name!r}")


def to_csv(name: str, report: dict) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    header, body = rows(name, report)
    writer.writerow(header)
    for row in body:
        writer.writerow([_cell(value) for value in row])
    return buffer.getvalue()


def render(name: str, report: dict, fmt: str) -> dict:
    """``{"media_type", "body", "filename"}`` of a report in ``fmt`` (csv or svg)."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown format {fmt!r}")
    body = to_csv(name, report) if fmt == "csv" else charts.chart(name, report)
    period = report.get("month") or "-".join(p for p in (report.get("from"), report.get("to")) if p)
    return {"media_type": FORMATS[fmt], "body": body, "filename": f"{name.replace('_', '-')}-{period}.{fmt}"}
