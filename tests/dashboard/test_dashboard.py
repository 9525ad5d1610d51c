"""The dashboard in real headless Chromium against `tam serve`: a wrong key shows an error, the right
one shows the project, a started step's bar advances, cancel stops a running job, a finished job shows
its usage. The test saves a screenshot in .services/dashboard.png; with TAM_UPDATE_SCREENSHOT=1 it
refreshes docs/dashboard.png, the one the README shows."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from tests.dashboard.conftest import KEY, Server

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / ("docs" if os.environ.get("TAM_UPDATE_SCREENSHOT") else ".services") / "dashboard.png"
NAMES = (
    "Northwind Analytics", "Globex Logistics", "Initech Payroll", "Umbrella Health", "Hooli Cloud", "Vandelay Imports",
    "Stark Robotics", "Wayne Freight", "Acme Billing", "Pied Piper Storage",
)  # fmt: skip


RUNNING_BAR_MOVED = "() => document.querySelector(\"#jobs tr[data-status='running'] progress\")?.value > 0"


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
    console_errors: list[str] = []
    page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" and "401" not in m.text else None)
    page.goto(server.url + "/")

    # A wrong key is refused with a visible message, and the key is asked for again.
    page.fill("#api-key", "not-the-key")
    page.click("#key-form button[type=submit]")
    expect(page.locator("#error")).to_be_visible()
    expect(page.locator("#error")).to_contain_text("refused")
    expect(page.locator("#key-form")).to_be_visible()

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

    # Cancel it: the row turns cancelled and its finished items stay counted.
    _job_row(page, "running").locator("button", has_text="Cancel").click()
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
    page.wait_for_timeout(1500)  # a second poll, so that the ETA shows in the picture
    SCREENSHOT.parent.mkdir(exist_ok=True)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT), full_page=False)
    expect(_job_row(page, "completed")).to_have_count(2, timeout=60_000)
    expect(page.locator("#contacts tbody tr").first).to_be_visible()

    assert SCREENSHOT.stat().st_size > 10_000
    assert console_errors == []
