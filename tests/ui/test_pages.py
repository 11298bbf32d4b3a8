"""The pages in Chromium: each role signs in and sees what it may; a case is claimed (by keyboard), decided and
leaves the queue; a nurse's denial is refused; the outreach list exports as CSV and records a contact; the
dashboard shows the numbers of the case store's metrics and of the utilization module; no page asks another
host for anything; form controls are labelled and the pages fit a tablet."""

import csv
import io
import json
import os
from pathlib import Path
from urllib.parse import urlparse

import pytest
from typer.testing import CliRunner

from tests.ui.conftest import PEOPLE, sign_in
from umrisk.cli import app as cli
from umrisk.serving.cases.repository import utcnow
from umrisk.serving.utilization import readmission_spec, records, utilization

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "images"
UNLABELLED = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')).map(el => el.name || el.id)"""


def local_only(context, base: str) -> None:
    """Every request the pages made went to the service's own host and port."""
    host = urlparse(base).netloc
    others = [u for u in context.requested if urlparse(u).netloc != host and not u.startswith(("data:", "blob:"))]
    assert others == [] and context.requested


def rows(page, selector: str) -> list[str]:
    return page.eval_on_selector_all(selector, "els => els.map(e => e.getAttribute('data-request'))")


@pytest.mark.parametrize("role, home, sees, refused", [
    ("nurse_reviewer", "/queue", ["Review queue", "Dashboard", "Models"], "/outreach"),
    ("physician_reviewer", "/queue", ["Review queue", "Dashboard", "Models"], "/outreach"),
    ("outreach", "/outreach", ["Outreach", "Dashboard", "Models"], "/queue"),
    ("admin", "/queue", ["Review queue", "Outreach", "Dashboard", "Models"], None),
])
def test_each_role_signs_in_to_its_pages(ui_url, context, role, home, sees, refused):
    page = context.new_page()
    page.goto(f"{ui_url}/queue")
    assert page.url.startswith(f"{ui_url}/login")  # not signed in: to the sign-in page
    sign_in(page, ui_url, role)
    assert page.url.startswith(ui_url + home)
    assert page.inner_text("header") .count(PEOPLE[role]) == 1
    assert page.eval_on_selector_all("nav a", "els => els.map(e => e.textContent)") == sees
    assert "the clinician decides" in page.inner_text(".banner")
    assert page.evaluate(UNLABELLED) == []
    if refused:
        answer = page.goto(ui_url + refused)
        assert answer.status == 403 and "may not use this page" in page.inner_text("main")
    cookie = next(c for c in context.cookies() if c["name"] == "umrisk_session")
    assert cookie["httpOnly"] and cookie["sameSite"] == "Strict"
    page.click("text=Sign out")
    assert page.url.startswith(f"{ui_url}/login")
    page.goto(f"{ui_url}{home}")
    assert page.url.startswith(f"{ui_url}/login")
    local_only(context, ui_url)


def test_wrong_password_and_token_sign_in(ui_url, context, served):
    page = context.new_page()
    page.goto(f"{ui_url}/login")
    page.fill("#name", PEOPLE["admin"])
    page.fill("#password", "not the password at all")
    page.click("form:has(#password) button[type=submit]")
    assert "Wrong user name and password" in page.inner_text("[role=alert]")
    page.fill("#token", served["tokens"]["outreach"])
    page.click("form:has(#token) button[type=submit]")
    assert page.url.startswith(f"{ui_url}/outreach")


def test_a_form_without_the_session_csrf_token_is_refused(ui_url, context):
    page = context.new_page()
    sign_in(page, ui_url, "nurse_reviewer")
    answer = page.request.post(f"{ui_url}/cases/UI-5/claim", form={"csrf": "forged"})
    assert answer.status == 403
    page.goto(f"{ui_url}/cases/UI-5")
    assert "Claim this case" in page.inner_text("main")  # nobody holds it


def test_claim_by_keyboard_decide_and_the_case_leaves_the_queue(ui_url, context):
    page = context.new_page()
    sign_in(page, ui_url, "nurse_reviewer")
    assert "UI-2" in rows(page, "tr[data-request]")
    assert page.inner_text("tr[data-request='UI-3'] .clock").startswith("overdue")  # 80 h old, expedited
    assert "overdue" in page.get_attribute("tr[data-request='UI-3'] .clock", "class")
    page.focus("tr[data-request='UI-2'] button")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "claimed" in page.inner_text("[role=status]")
    assert page.inner_text("tr[data-request='UI-2'] td:nth-child(10)") == PEOPLE["nurse_reviewer"]
    page.click("tr[data-request='UI-2'] a:has-text('UI-2')")
    assert "Total knee arthroplasty" in page.inner_text("main")  # the code in words
    assert "Dr Example" in page.inner_text("main")
    labels = page.eval_on_selector_all("input[name=decision]", "els => els.map(e => e.value)")
    assert labels == ["approved", "pended_for_information", "escalated"]  # no denial offered to a nurse
    page.check("input[value=approved]")
    page.click("text=Record the determination")
    assert page.url.startswith(f"{ui_url}/queue")
    assert "approve" in page.inner_text("[role=status]")
    assert "UI-2" not in rows(page, "tr[data-request]")
    page.goto(f"{ui_url}/cases/UI-2")
    assert "decided (approved)" in page.inner_text("main")
    assert "determination approved" in page.inner_text(".history")
    local_only(context, ui_url)


def test_a_nurse_cannot_deny(ui_url, context, ui_state):
    page = context.new_page()
    sign_in(page, ui_url, "nurse_reviewer")
    page.goto(f"{ui_url}/cases/UI-4")
    page.click("text=Claim this case")
    csrf = page.get_attribute("form.decide input[name=csrf]", "value")
    answer = page.request.post(f"{ui_url}/cases/UI-4/determination", form={
        "csrf": csrf, "decision": "denied", "reason_code": "NMN",
        "reason": "No trial of conservative therapy in the last six weeks"})
    assert answer.status == 403
    assert "may not make the determination" in answer.text() and "Not recorded" in answer.text()
    case = ui_state.cases.get("UI-4")
    assert case["status"] == "in_review" and case["decision"] is None


def test_a_physician_denies_with_a_reason(ui_url, context, ui_state):
    page = context.new_page()
    sign_in(page, ui_url, "physician_reviewer")
    page.goto(f"{ui_url}/cases/UI-6")
    page.click("text=Claim this case")
    page.check("input[value=denied]")
    page.click("text=Record the determination")
    assert "Not recorded" in page.inner_text("[role=alert]")  # no reason code, no reason
    page.check("input[value=denied]")
    page.fill("#reason_code", "NMN")
    page.fill("#reason", "No trial of conservative therapy in the last six weeks")
    page.click("text=Record the determination")
    assert page.url.startswith(f"{ui_url}/queue") and "UI-6" not in rows(page, "tr[data-request]")
    assert ui_state.cases.get("UI-6")["decision"] == "denied"


def test_outreach_csv_and_a_contact(ui_url, context):
    page = context.new_page()
    sign_in(page, ui_url, "outreach")
    page.goto(f"{ui_url}/outreach?capacity=10")
    listed = page.eval_on_selector_all("tr[data-member]", "els => els.map(e => e.getAttribute('data-member'))")
    assert len(listed) == 10
    assert page.inner_text("tr[data-member] .reasons")  # the reasons in words
    with page.expect_download() as done:
        page.click("text=Export CSV")
    table = list(csv.DictReader(io.StringIO(Path(done.value.path()).read_text())))
    assert [r["member_id"] for r in table] == listed
    assert {"tier", "probability", "reasons", "last_contact"} <= set(table[0])
    first = f"tr[data-member='{listed[0]}']"
    assert "none recorded" in page.inner_text(f"{first} .last-contact")
    page.select_option(f"{first} select[name=channel]", "phone")
    page.select_option(f"{first} select[name=outcome]", "reached")
    page.click(f"{first} button")
    assert "contact recorded" in page.inner_text("[role=status]")
    assert "phone: reached" in page.inner_text(f"tr[data-member='{listed[0]}'] .last-contact")
    local_only(context, ui_url)


def _metrics_on_page(page) -> dict:
    return page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('#review-metrics tr[data-key]')]
        .map(tr => [tr.dataset.key, Object.fromEntries([...tr.querySelectorAll('td')]
        .map(td => [td.dataset.urgency, td.textContent.trim()]))]))""")


def _shown(v, unit: str = "") -> str:
    return "–" if v is None else f"{v}{unit}"


def test_dashboard_numbers_equal_the_metrics_and_utilization(ui_url, context, ui_state, served):
    page = context.new_page()
    sign_in(page, ui_url, "admin")
    year = utcnow().year
    page.goto(f"{ui_url}/dashboard?year={year}")
    shown = _metrics_on_page(page)
    out = CliRunner().invoke(cli, ["review", "metrics", "--year", str(year), "--json", "--database-url",
                                   ui_state.settings.database_url])
    assert out.exit_code == 0, out.output
    expected = json.loads(out.output)  # what `umrisk review metrics` prints
    assert expected["all"]["requests_decided"] >= 1  # at least the one the fixture decided
    for key, cells in shown.items():
        unit = "%" if key.startswith("pct_") else ""
        for urgency, text in cells.items():
            assert text == _shown(expected[urgency][key], unit), (key, urgency)
    # the utilization table, for one line of business, equals the utilization module's figures
    page.goto(f"{ui_url}/dashboard?lob=medicare&year={year}")
    page.click("text=The figures as a table")
    spec = readmission_spec([m.spec for m in ui_state.models.values()])
    want = [r for r in records(utilization(ui_state.scorer.store, spec)) if r["line_of_business"] == "medicare"]
    month = want[len(want) // 2]
    cells = page.evaluate(f"""() => Object.fromEntries([...document.querySelectorAll(
        '#utilization tr[data-month="{month['month']}"] td')].map(td => [td.dataset.key, td.textContent.trim()]))""")
    assert cells["admissions_per_1000"] == f"{month['admissions_per_1000']:,.1f}"
    assert cells["pmpm"] == f"{month['pmpm']:,.2f}"
    assert cells["readmission_rate"] == ("–" if month["readmission_rate"] is None
                                         else f"{month['readmission_rate']:,.1f}")
    assert page.locator("svg.chart").count() == 6
    local_only(context, ui_url)


def test_case_page_shows_risks_timeline_and_history_and_is_audited(ui_url, context, ui_state):
    page = context.new_page()
    sign_in(page, ui_url, "physician_reviewer")
    before = len(ui_state.audit.entries("review-case"))
    page.goto(f"{ui_url}/cases/UI-1")
    text = page.inner_text("main")
    assert "Two years" in text and "Case history" in text and "model version" in text
    assert page.locator("svg.timeline").count() == 1
    entries = ui_state.audit.entries("review-case")[before:]
    assert any(e["event"] == "lookup" and e["request_id"] == "UI-1" and e["via"] == "ui" for e in entries)
    page.goto(f"{ui_url}/models")
    assert "Lineage" in page.inner_text("main") and "Data fingerprint" in page.inner_text("main")
    local_only(context, ui_url)


def test_screenshots_and_a_tablet(ui_url, browser, tmp_path):
    """Every page at 1280 px (into docs/images when UMRISK_SCREENSHOTS=1) and at 768 px without a page-wide
    horizontal scroll."""
    out = SHOTS if os.environ.get("UMRISK_SCREENSHOTS") else tmp_path
    out.mkdir(parents=True, exist_ok=True)
    for width, suffix in ((1280, ""), (768, "-tablet")):
        ctx = browser.new_context(viewport={"width": width, "height": 900})
        page = ctx.new_page()
        page.goto(f"{ui_url}/login")
        page.screenshot(path=str(out / f"ui-login{suffix}.png"))
        sign_in(page, ui_url, "admin")
        for name, path in (("queue", "/queue"), ("case", "/cases/UI-1"), ("outreach", "/outreach?capacity=15"),
                           ("dashboard", "/dashboard"), ("models", "/models")):
            page.goto(ui_url + path)
            page.screenshot(path=str(out / f"ui-{name}{suffix}.png"), full_page=True)
            assert page.evaluate("document.documentElement.scrollWidth") <= width + 1, (name, width)
        ctx.close()
    assert (out / "ui-queue.png").stat().st_size > 10_000
