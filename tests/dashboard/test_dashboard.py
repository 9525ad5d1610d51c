"""The dashboard in real headless Chromium against `tam serve`: a wrong key shows an error, the right
one shows the project, a started step's bar advances, cancel asks first and then stops a running job, a
finished job shows its usage. No console error along the way but the refused key's own 401."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.dashboard.conftest import KEY, Server, console_errors

NAMES = (
    "Northwind Analytics", "Globex Logistics", "Initech Payroll", "Umbrella Health", "Hooli Cloud", "Vandelay Imports",
    "Stark Robotics", "Wayne Freight", "Acme Billing", "Pied Piper Storage",
)  # fmt: skip


RUNNING_BAR = "document.querySelector(\"#jobs tr[data-status='running'] progress\")?.value"
RUNNING_BAR_MOVED = f"() => {RUNNING_BAR} > 0"


def _seed(server: Server) -> str:
    project = server.api.post(
        "/api/tam/projects",
        json={"name": "Mid-market logistics SaaS", "icp": "B2B software for logistics teams, 50-500 employees"},
    )
    assert project.status_code == 201, project.text
    project_id = str(project.json()["id"])
    rows = [
        {"name": f"{NAMES[i % len(NAMES)]} {i // len(NAMES) + 1}", "domain": f"company{i}.example"} for i in range(40)
    ]
    imported = server.api.post(f"/api/tam/projects/{project_id}/companies", json=rows)
    assert imported.json()["inserted"] == 40, imported.text
    return project_id


def _job_row(page: Page, status: str) -> Locator:
    return page.locator(f"#jobs tbody tr[data-status='{status}']")


def _bar_value(page: Page) -> float:
    return float(page.locator("#jobs tbody tr[data-status='running'] progress").first.evaluate("bar => bar.value"))


def _start(page: Page, job_type: str) -> None:
    page.select_option("#step", job_type)
    page.click("#start")


@pytest.mark.slow
def test_dashboard_follows_starts_and_cancels_jobs(server: Server, browser: Browser) -> None:
    _seed(server)
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    errors = console_errors(page)
    page.goto(server.url + "/")

    # A wrong key is refused with a visible message, and the key is asked for again. The browser itself
    # logs the refused request; that is the only console error this test allows.
    page.fill("#api-key", "not-the-key")
    page.click("#key-form button[type=submit]")
    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#error")).to_contain_text("refused")
    expect(page.locator("#key-form")).to_be_visible()
    assert len(errors) == 1 and "401" in errors[0], errors
    errors.clear()

    page.fill("#api-key", KEY)
    page.click("#key-form button[type=submit]")
    expect(page.locator("#projects")).to_contain_text("Mid-market logistics SaaS")
    expect(page.locator("#project-name")).to_have_text("Mid-market logistics SaaS")
    expect(page.locator("#company-counts")).to_contain_text("40")
    expect(page.locator("#error")).to_be_hidden()
    assert page.evaluate("sessionStorage.getItem('tam.apiKey')") == KEY

    # Start qualify: the running job's bar advances between two readings.
    _start(page, "qualify")
    expect(_job_row(page, "running")).to_have_count(1, timeout=10_000)
    page.wait_for_function(
        RUNNING_BAR_MOVED,
        timeout=10_000,
    )
    first = _bar_value(page)
    time.sleep(1.5)
    second = _bar_value(page)
    assert 0 < first < second < 100, (first, second)
    expect(page.locator("#jobs tbody tr[data-status='running'] td").nth(3)).to_contain_text("~")  # an ETA

    # Cancel asks first: "keep it running" leaves the job alone; confirming cancels it, and the row
    # turns cancelled with its finished items still counted.
    _job_row(page, "running").locator("button", has_text="Cancel").click()
    expect(page.locator("#confirm")).to_be_visible()
    expect(page.locator("#confirm-text")).to_contain_text("Cancel Qualify?")
    page.click("#confirm-no")
    expect(page.locator("#confirm")).to_be_hidden()
    before = _bar_value(page)
    page.wait_for_function(f"() => {RUNNING_BAR} > {before}", timeout=10_000)  # still running
    _job_row(page, "running").locator("button", has_text="Cancel").click()
    page.click("#confirm-yes")
    expect(_job_row(page, "cancelled")).to_have_count(1, timeout=10_000)
    expect(_job_row(page, "running")).to_have_count(0)
    expect(_job_row(page, "cancelled").locator("button", has_text="Cancel")).to_be_hidden()

    # A second qualify resumes the rest and completes, with usage shown; contacts then start.
    _start(page, "qualify")
    expect(_job_row(page, "completed")).to_have_count(1, timeout=30_000)
    completed = _job_row(page, "completed")
    expect(completed.locator("progress")).to_have_js_property("value", 100)
    expect(completed).to_contain_text("claude input tokens")
    expect(page.locator("#company-counts dd").nth(0)).to_have_text("0")  # nothing pending any more
    _start(page, "findContacts")
    expect(_job_row(page, "running")).to_have_count(1, timeout=10_000)
    page.wait_for_function(
        RUNNING_BAR_MOVED,
        timeout=20_000,
    )
    expect(_job_row(page, "completed")).to_have_count(2, timeout=60_000)
    expect(page.locator("#contacts tbody tr").first).to_be_visible()
    assert errors == []
