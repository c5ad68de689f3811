"""Reports as CSV (a header, one row per line item) and as SVG charts drawn here, offline."""

import csv
import io
import xml.etree.ElementTree as ET

import pytest

from reports import render

FUNNEL = {"pipeline_id": "p", "name": "Опт", "from": "2026-11", "to": "2026-11", "stages": [
    {"stage_id": "a", "name": "Новая", "kind": "open", "position": 0, "removed": False, "entered": 10, "moved_on": 6,
     "lost": 3, "conversion": 0.6, "median_days": 1.5, "mean_days": 2.0},
    {"stage_id": "b", "name": "<Успех & co>", "kind": "won", "position": 1, "removed": False, "entered": 6,
     "moved_on": 0, "lost": 0, "conversion": 0.0, "median_days": None, "mean_days": None},
]}
MANAGERS = {"month": "2026-11", "managers": [
    {"user_id": "u", "name": "=HYPERLINK(\"x\")", "branch_id": "b", "role": "manager", "calls": 2, "meetings": 1,
     "interactions": 4, "tasks_done_on_time": 1, "tasks_overdue": 0, "penalties": 1,
     "penalty_amounts": [{"amount": "500.00", "currency": "RUB"}], "deals_moved": 3, "deals_won": 1,
     "revenue": [{"amount": "700.00", "currency": "RUB"}, {"amount": "5.00", "currency": "USD"}]},
]}


def parse(text):
    return list(csv.reader(io.StringIO(text)))


def test_a_funnel_as_csv_has_a_header_and_one_row_per_stage():
    rows = parse(render.render("funnel", FUNNEL, "csv")["body"])

    assert rows[0] == ["stage_id", "name", "kind", "position", "entered", "moved_on", "lost", "conversion",
                       "median_days", "mean_days"]
    assert rows[1] == ["a", "Новая", "open", "0", "10", "6", "3", "0.6", "1.5", "2"]
    assert rows[2][1] == "<Успех & co>" and rows[2][8:] == ["", ""]
    assert len(rows) == 3


def test_a_csv_cell_a_spreadsheet_would_run_as_a_formula_is_defused():
    rows = parse(render.to_csv("managers", MANAGERS))

    assert rows[1][1] == "'=HYPERLINK(\"x\")"
    assert rows[1][-1] == "700.00 RUB; 5.00 USD" and rows[1][9] == "500.00 RUB"


def test_a_chart_is_well_formed_svg_with_user_text_escaped():
    out = render.render("funnel", FUNNEL, "svg")

    root = ET.fromstring(out["body"])
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    texts = [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert "<Успех & co>" in texts and any("10 in" in (t or "") for t in texts)
    assert len(list(root.iter("{http://www.w3.org/2000/svg}rect"))) >= 3
    assert out["media_type"] == "image/svg+xml" and out["filename"] == "funnel-2026-11-2026-11.svg"


@pytest.mark.parametrize(("name", "report"), [
    ("client_base", {"from": "2026-01", "to": "2026-02", "months": [
        {"month": "2026-01", "total": 0, "new": 0, "archived": 0, "net": 0}], "by_source": [], "by_tag": []}),
    ("plan", {"month": "2026-11", "branches": [], "managers": []}),
    ("channels", {"from": "2026-11", "to": "2026-11", "channels": []}),
    ("managers", {"month": "2026-11", "managers": []}),
    ("scripts", {"from": "2026-11", "to": "2026-11", "scripts": []}),
])
def test_an_empty_report_draws_a_chart_that_says_so(name, report):
    root = ET.fromstring(render.render(name, report, "svg")["body"])

    assert "No data for this period" in [t.text for t in root.iter("{http://www.w3.org/2000/svg}text")]


def test_every_report_has_a_chart_of_its_own():
    managers = ET.fromstring(render.render("managers", MANAGERS, "svg")["body"])
    legend = [t.text for t in managers.iter("{http://www.w3.org/2000/svg}text")]

    assert {"calls", "meetings", "deals moved", "deals won", "tasks on time", "tasks overdue"} <= set(legend)
