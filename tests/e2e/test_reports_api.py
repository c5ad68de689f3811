"""The reports over HTTP, as the head of sales, an admin and a manager use them: every report in JSON, CSV
and as a chart; who sees what; bad input; and the dashboard page in headless Chromium."""

from __future__ import annotations

import csv
import io
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from crm_common.testing.fixtures import poll
from crm_common.testing.system import phone_number, unique
from tests.e2e.conftest import make_branch

MONTH = datetime.now(UTC).strftime("%Y-%m")
STAGES = [
    {"name": "Заявка", "kind": "open"},
    {"name": "Переговоры", "kind": "open"},
    {"name": "Оплачено", "kind": "won"},
    {"name": "Отказ", "kind": "lost"},
]
REPORTS = {
    "client-base": "/reports/client-base",
    "funnel": "/reports/funnel",
    "plan": f"/reports/plan?month={MONTH}",
    "channels": f"/reports/channels?from={MONTH}&to={MONTH}",
    "managers": f"/reports/managers?month={MONTH}",
    "scripts": f"/reports/scripts?from={MONTH}&to={MONTH}",
}


@pytest.fixture(scope="module")
def sales(admin):
    """A branch's month of work: clients from two channels, deals won and lost, calls with a script, plans, spend."""
    branch = make_branch(admin, unique("Отчёты "), managers=2)
    head, (anna, boris) = branch.head, branch.managers
    pipeline = head.ok("POST", "/pipelines", {"name": unique("Опт "), "stages": STAGES})
    stage = {s["name"]: s["id"] for s in pipeline["stages"]}
    script = head.ok("POST", "/scripts", {"title": "Первый звонок", "body": "Здравствуйте!"})
    won_amounts, clients = [], []
    for index, (manager, source) in enumerate([(anna, "yandex"), (anna, "yandex"), (boris, "avito"), (boris, "yandex")]):
        client = manager.ok("POST", "/clients", {"kind": "person", "name": f"Клиент {index}", "source": source,
                                                 "phones": [phone_number()], "tags": ["vip"] if index < 2 else []})
        clients.append(client)
        manager.ok("POST", f"/clients/{client['id']}/interactions", {"type": "call", "direction": "out",
                                                                     "script_id": script["id"]})
        deal = manager.ok("POST", "/deals", {"client_id": client["id"], "pipeline_id": pipeline["id"],
                                             "title": "Поставка", "amount": f"{(index + 1) * 1000}.00", "currency": "RUB"})
        manager.ok("POST", f"/deals/{deal['id']}/stage", {"stage_id": stage["Переговоры"]})
        if index != 3:
            manager.ok("POST", f"/deals/{deal['id']}/stage", {"stage_id": stage["Оплачено"]})
            won_amounts.append((index + 1) * 1000)
        else:
            manager.ok("POST", f"/deals/{deal['id']}/stage", {"stage_id": stage["Отказ"], "lost_reason": "Дорого"})
    anna.ok("POST", f"/clients/{clients[0]['id']}/interactions", {"type": "meeting"})
    head.ok("POST", "/touchpoints", {"channel": "web_form", "phone": phone_number(), "utm": {"utm_source": "yandex"}})
    plan = head.ok("PUT", "/plans", {"month": MONTH, "user_id": anna.me["id"], "amount": "10000.00", "currency": "RUB"})
    head.ok("PUT", "/plans", {"month": MONTH, "amount": "20000.00", "currency": "RUB"})
    head.ok("POST", "/channels/yandex/spend", {"month": MONTH, "amount": "1500.00", "currency": "RUB"})

    def settled():
        managers = head.ok("GET", REPORTS["managers"])["managers"]
        done = {m["user_id"]: m for m in managers}
        return (done.get(anna.me["id"], {}).get("deals_won") == 2 and done.get(boris.me["id"], {}).get("deals_won") == 1
                and head.ok("GET", REPORTS["channels"])["channels"]
                and sum(c["touchpoints"] for c in head.ok("GET", REPORTS["channels"])["channels"]) == 1
                and head.ok("GET", REPORTS["scripts"])["scripts"])

    poll(settled, timeout=30, interval=0.3, message="the month's work in the reports")
    return {"branch": branch, "head": head, "anna": anna, "boris": boris, "pipeline": pipeline, "plan": plan,
            "script": script, "won": won_amounts}


def funnel_path(sales) -> str:
    return f"/reports/funnel?pipeline_id={sales['pipeline']['id']}&from={MONTH}&to={MONTH}"


def path_of(sales, name) -> str:
    return funnel_path(sales) if name == "funnel" else REPORTS[name]


def test_the_client_base_counts_this_months_new_clients_per_source_and_tag(sales):
    report = sales["head"].ok("GET", "/reports/client-base")

    assert len(report["months"]) == 12 and report["months"][-1]["month"] == MONTH
    latest = report["months"][-1]
    assert (latest["new"], latest["total"], latest["archived"], latest["net"]) == (5, 5, 0, 5)
    assert {s["source"]: s["new"] for s in report["by_source"]} == {"yandex": 4, "avito": 1}
    assert report["by_tag"] == [{"tag": "vip", "total": 2}]


def test_the_funnel_shows_where_deals_move_on_and_where_they_are_lost(sales):
    stages = {s["name"]: s for s in sales["head"].ok("GET", funnel_path(sales))["stages"]}

    assert [s for s in stages] == ["Заявка", "Переговоры", "Оплачено", "Отказ"]
    assert (stages["Заявка"]["entered"], stages["Заявка"]["moved_on"], stages["Заявка"]["conversion"]) == (4, 4, 1.0)
    assert (stages["Переговоры"]["entered"], stages["Переговоры"]["moved_on"], stages["Переговоры"]["lost"]) == (4, 3, 1)
    assert stages["Переговоры"]["conversion"] == 0.75
    assert stages["Заявка"]["median_days"] is not None and stages["Заявка"]["median_days"] < 0.01


def test_the_plan_report_compares_each_plan_with_the_deals_won(sales):
    report = sales["head"].ok("GET", REPORTS["plan"])

    [branch] = report["branches"]
    assert (branch["plan"], branch["fact"], branch["deals_won"]) == ("20000.00", f"{sum(sales['won'])}.00", 3)
    assert branch["fulfilment"] == round(sum(sales["won"]) / 20000, 4)
    anna = next(m for m in report["managers"] if m["user_id"] == sales["anna"].me["id"])
    assert (anna["plan"], anna["fact"], anna["fulfilment"], anna["currency"]) == ("10000.00", "3000.00", 0.3, "RUB")
    assert {m["user_id"] for m in report["managers"]} == {sales["anna"].me["id"], sales["boris"].me["id"]}


def test_a_miss_reason_shows_in_the_plan_report(sales):
    head, plan = sales["head"], sales["plan"]
    answer = head.ok("POST", f"/plans/{plan['id']}/miss-reason", {"reason": "Мало заявок с сайта", "category": "leads"})

    assert answer["miss_reason"]["category"] == "leads"
    anna = next(m for m in head.ok("GET", REPORTS["plan"])["managers"] if m["user_id"] == sales["anna"].me["id"])
    assert anna["miss_reason"]["reason"] == "Мало заявок с сайта"


def test_the_channels_report_weighs_spend_against_revenue(sales):
    lines = {c["source"]: c for c in sales["head"].ok("GET", REPORTS["channels"])["channels"]}

    yandex = lines["yandex"]
    assert (yandex["touchpoints"], yandex["new_clients"], yandex["deals_won"]) == (1, 4, 2)
    assert (yandex["revenue"], yandex["spend"], yandex["currency"]) == ("3000.00", "1500.00", "RUB")
    assert yandex["roi"] == 1.0 and yandex["cost_per_client"] == "375.00"
    assert (lines["avito"]["deals_won"], lines["avito"]["roi"]) == (1, None)


def test_the_managers_report_shows_what_each_manager_did(sales):
    lines = {m["user_id"]: m for m in sales["head"].ok("GET", REPORTS["managers"])["managers"]}

    anna = lines[sales["anna"].me["id"]]
    assert (anna["calls"], anna["meetings"], anna["interactions"], anna["deals_moved"], anna["deals_won"]) == (2, 1, 3, 4, 2)
    assert anna["revenue"] == [{"amount": "3000.00", "currency": "RUB"}]
    assert (anna["tasks_done_on_time"], anna["tasks_overdue"], anna["penalties"]) == (0, 0, 0)


def test_the_scripts_report_counts_uses_clients_and_wins_after_a_use(sales):
    [line] = sales["head"].ok("GET", REPORTS["scripts"])["scripts"]

    assert (line["script_id"], line["title"], line["uses"], line["clients"]) == (
        sales["script"]["id"], "Первый звонок", 4, 4)
    assert line["deals_won"] == 3  # each call came before its client's deal was won


@pytest.mark.parametrize("name", list(REPORTS))
def test_every_report_comes_as_csv_with_a_header_and_one_row_per_line(sales, name):
    response = sales["head"].get(path_of(sales, name), headers={"Accept": "text/csv"})

    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("text/csv")
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8"))))
    assert rows[0] and all(rows[0])
    assert len(rows) >= 2 and all(len(row) == len(rows[0]) for row in rows)


@pytest.mark.parametrize("name", list(REPORTS))
def test_every_report_comes_as_an_svg_chart(sales, name):
    response = sales["head"].get(path_of(sales, name), headers={"Accept": "image/svg+xml"})

    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("image/svg+xml")
    root = ET.fromstring(response.content)
    assert root.tag.endswith("svg") and len(list(root.iter("{http://www.w3.org/2000/svg}rect"))) > 2


def test_a_format_the_reports_cannot_give_is_406_in_the_error_shape(sales):
    response = sales["head"].get(REPORTS["managers"], headers={"Accept": "application/xml"})

    assert response.status_code == 406
    assert response.json()["error"]["code"] == "not_acceptable" and "Accept" in response.json()["error"]["fields"]
    browser_like = sales["head"].get(REPORTS["managers"], headers={"Accept": "text/html,*/*;q=0.8"})
    assert browser_like.status_code == 200 and browser_like.headers["Content-Type"].startswith("application/json")


@pytest.mark.parametrize("name", ["client-base", "funnel", "plan", "channels", "scripts"])
def test_a_manager_may_not_read_the_branch_reports(sales, name):
    response = sales["anna"].get(path_of(sales, name))

    assert response.status_code == 403 and response.json()["error"]["code"] == "forbidden"


def test_a_manager_reads_only_their_own_line_of_the_managers_report(sales):
    lines = sales["boris"].ok("GET", REPORTS["managers"])["managers"]

    assert [line["user_id"] for line in lines] == [sales["boris"].me["id"]]
    assert lines[0]["deals_won"] == 1


def test_a_head_sees_only_their_branch_and_an_admin_every_branch(sales, world, admin):
    other_head = world.north.head
    assert all(m["branch_id"] != sales["branch"].id for m in other_head.ok("GET", REPORTS["managers"])["managers"])
    assert other_head.get(f"/reports/plan?month={MONTH}&branch_id={sales['branch'].id}").status_code == 404
    assert other_head.get(funnel_path(sales)).status_code == 404

    narrowed = admin.ok("GET", f"/reports/plan?month={MONTH}&branch_id={sales['branch'].id}")
    assert [b["branch_id"] for b in narrowed["branches"]] == [sales["branch"].id]
    everything = admin.ok("GET", REPORTS["plan"])
    assert sales["branch"].id in {b["branch_id"] for b in everything["branches"]} and len(everything["branches"]) > 1
    assert admin.get("/reports/client-base?branch_id=7d3c8a5e-0000-4000-8000-000000000000").status_code == 404


@pytest.mark.parametrize(("path", "field"), [
    ("/reports/client-base?from=2026-13&to=2026-12", "from"),
    ("/reports/client-base?from=2026-05&to=2026-04", "to"),
    ("/reports/channels?to=last-month", "to"),
    ("/reports/plan?month=2026/11", "month"),
    ("/reports/managers?month=11-2026", "month"),
    ("/reports/funnel", "pipeline_id"),
    ("/reports/funnel?pipeline_id=nope", "pipeline_id"),
])
def test_bad_report_queries_are_422_naming_the_field(sales, path, field):
    response = sales["head"].get(path)

    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["fields"]


def test_an_unknown_pipeline_is_404(sales):
    response = sales["head"].get("/reports/funnel?pipeline_id=7d3c8a5e-0000-4000-8000-000000000000")

    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/channels/yandex/spend", {"month": MONTH, "amount": "-10.00", "currency": "RUB"}, "amount"),
    ("/channels/yandex/spend", {"month": MONTH, "amount": "ten", "currency": "RUB"}, "amount"),
    ("/channels/yandex/spend", {"month": MONTH, "amount": 10, "currency": "RUB"}, "amount"),
    ("/channels/yandex/spend", {"month": "2026-13", "amount": "10.00", "currency": "RUB"}, "month"),
])
def test_bad_spend_is_422_naming_the_field(sales, path, body, field):
    response = sales["head"].post(path, json=body)

    assert response.status_code == 422, response.text
    assert field in response.json()["error"]["fields"]


def test_a_plan_for_a_user_of_another_branch_is_422(sales, world):
    stranger = world.north.managers[0].me["id"]
    response = sales["head"].request("PUT", "/plans", json={"month": MONTH, "user_id": stranger, "amount": "1.00",
                                                            "currency": "RUB"})

    assert response.status_code == 422 and "user_id" in response.json()["error"]["fields"]


def test_a_miss_reason_category_outside_the_list_is_422_and_a_manager_may_not_set_plans(sales):
    response = sales["head"].post(f"/plans/{sales['plan']['id']}/miss-reason", json={"reason": "x", "category": "luck"})
    assert response.status_code == 422 and "category" in response.json()["error"]["fields"]
    forbidden = sales["anna"].request("PUT", "/plans", json={"month": MONTH, "amount": "1.00", "currency": "RUB"})
    assert forbidden.status_code == 403


def test_the_dashboard_shows_the_head_of_sales_the_charts_in_a_real_browser(sales, system, tmp_path):
    from tests.e2e.browser import Browser, ensure_chromium, png_pixels

    binary, why = ensure_chromium()
    if binary is None:
        pytest.skip(f"the dashboard needs a headless Chromium: {why}")
    head = sales["head"]
    email = head.ok("GET", "/me")["email"]
    page = Browser(binary, width=1200, height=1000)
    try:
        page.goto(system.base_url.replace("/api/v1", "/dashboard"))
        page.evaluate(f"document.getElementById('email').value = {email!r}")
        page.evaluate("document.getElementById('password').value = 'e2e-password-1'")
        page.evaluate("document.getElementById('login-button').click()")
        page.wait_for("document.querySelectorAll('.card').length >= 5 && "
                      "[...document.querySelectorAll('.card')].every(c => c.dataset.loaded === 'true')", timeout=30)
        charts = page.evaluate("[...document.querySelectorAll('.card img')].map(i => [i.alt, i.naturalWidth])")
        shot = page.screenshot()
    finally:
        page.close()
    (tmp_path / "dashboard.png").write_bytes(shot)
    assert {alt for alt, _ in charts} >= {"Plan and fact", "Client base", "Funnel", "Channels", "Managers"}
    assert all(width > 0 for _, width in charts)
    width, height, rows = png_pixels(shot)
    colours = {row[x:x + 3] for row in rows[::8] for x in range(0, len(row), 4 * 8)}
    assert (width, height) == (1200, 1000) and len(colours) > 20, "the screenshot is blank"


def test_the_demo_data_fills_every_report_and_chart(system):
    """``make demo``: every report of a demo branch has lines, and every chart draws more than its frame."""
    import sys

    from crm_common.config import DEV_ADMIN_PASSWORD, REPO_ROOT
    from crm_common.testing.system import Api

    sys.path.insert(0, str(REPO_ROOT / "scripts"))
    from demo import DEMO_PASSWORD, seed

    seed(system.base_url, system.admin.me["email"], DEV_ADMIN_PASSWORD, clients_per_branch=12)
    head = Api(system.base_url).login("head.msk@demo.crm", DEMO_PASSWORD)
    pipeline = head.ok("GET", "/pipelines")["items"][0]
    paths = dict(REPORTS, funnel=f"/reports/funnel?pipeline_id={pipeline['id']}&from={MONTH}&to={MONTH}")

    def filled():
        reports = {name: head.ok("GET", path) for name, path in paths.items()}
        return (reports["client-base"]["months"][-1]["new"] and reports["funnel"]["stages"][0]["entered"]
                and reports["plan"]["managers"] and reports["plan"]["branches"][0]["plan"]
                and any(c["spend"] != "0.00" for c in reports["channels"]["channels"])
                and any(m["calls"] for m in reports["managers"]["managers"]) and reports["scripts"]["scripts"])

    poll(filled, timeout=40, interval=0.5, message="the demo data in every report")
    for path in paths.values():
        chart = ET.fromstring(head.get(path, headers={"Accept": "image/svg+xml"}).content)
        assert "No data for this period" not in [t.text for t in chart.iter("{http://www.w3.org/2000/svg}text")]


def test_crm_reports_rebuild_reads_every_running_service_and_gives_the_same_reports(sales, system, admin):
    """The operator's command, with the running CRM's settings: every report reads the same afterwards."""
    import subprocess
    import sys
    from pathlib import Path

    head = sales["head"]
    paths = [path_of(sales, name) for name in REPORTS]
    paths += [f"/reports/plan?month={MONTH}", "/reports/client-base"]
    before = {path: head.ok("GET", path) for path in paths}
    everything = admin.ok("GET", REPORTS["plan"])
    command = Path(sys.executable).with_name("crm-reports")

    done = subprocess.run([str(command), "rebuild", "--page-size", "7"], env=system.env, capture_output=True,
                          text=True, timeout=300)

    assert done.returncode == 0, done.stderr[-2000:]
    assert "skipping" not in done.stderr, done.stderr[-2000:]  # every service of the e2e system answers
    assert "rebuilt in" in done.stderr and "deals" in done.stderr
    assert {path: head.ok("GET", path) for path in paths} == before
    assert admin.ok("GET", REPORTS["plan"]) == everything
