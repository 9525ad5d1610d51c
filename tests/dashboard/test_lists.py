"""The dashboard's lists and forms in real headless Chromium against `tam serve` (sandbox providers, no
latency): a project of 300 sourced companies, qualified, with contacts and LinkedIn checks. Companies and
contacts page on the server, filter by status, search by name or domain, export CSV (BOM, neutralised
formulas, 51-200 ranges); a project is created and a CSV imported from the page; LinkedIn is a link; long
reasons open on demand; the page fits 390 px; the page and its files carry CSP and nosniff; no console
error anywhere. With TAM_UPDATE_SCREENSHOT=1 the test refreshes docs/dashboard.png (the README's picture);
otherwise it writes .services/dashboard.png."""

from __future__ import annotations

import csv
import io
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.dashboard.conftest import KEY, Server, console_errors, serve

pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("dashboard-lists")]  # one server and browser

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOT = ROOT / ("docs" if os.environ.get("TAM_UPDATE_SCREENSHOT") else ".services") / "dashboard.png"
COMPANIES = 300
TRICKY = [
    {"name": '=HYPERLINK("http://evil.example","click")', "domain": "formula.example", "employeeRange": "51,200"},
    {"name": "Müller 東京 GmbH", "domain": "mueller.example", "employeeRange": "1001,5000"},
    {"name": "@risk Partners", "domain": "at-risk.example", "employeeRange": "10001,"},
]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One server for the module (its start is most of a test's time); the tests only add to it."""
    env = {
        "TAM_SANDBOX_LATENCY": "0",
        "TAM_SOURCE_COMPANIES_MAX_RECORDS": str(COMPANIES),
        "TAM_QUALIFY_CONCURRENCY": "20",
        "TAM_FIND_CONTACTS_CONCURRENCY": "10",
        "TAM_FIND_CONTACTS_ENRICH_CONCURRENCY": "10",
    }
    with serve(tmp_path_factory.mktemp("lists"), env) as running:
        yield running


def run_job(server: Server, project_id: str, job_type: str) -> None:
    created = server.api.post("/api/tam/jobs", json={"projectId": project_id, "jobType": job_type})
    assert created.status_code == 201, created.text
    job_id = created.json()["jobId"]
    deadline = time.monotonic() + 120
    while (job := server.api.get(f"/api/tam/jobs/{job_id}").json())["status"] not in {"completed", "failed"}:
        assert time.monotonic() < deadline, job
        time.sleep(0.2)
    assert job["status"] == "completed", job


@pytest.fixture(scope="module")
def project(server: Server) -> str:
    """300 sandbox companies plus two tricky ones, qualified, with contacts whose LinkedIn was checked."""
    created = server.api.post(
        "/api/tam/projects",
        json={
            "name": "Mid-market logistics SaaS",
            "icp": "B2B software for logistics and freight teams in Europe and North America, 50-500 employees",
            "targetTitles": ["Head of Operations", "VP Logistics", "COO"],
        },
    )
    project_id = str(created.json()["id"])
    run_job(server, project_id, "sourceCompanies")
    assert server.api.post(f"/api/tam/projects/{project_id}/companies", json=TRICKY).json()["inserted"] == len(TRICKY)
    for step in ("qualify", "findContacts", "checkLinkedin"):
        run_job(server, project_id, step)
    return project_id


RIGHT_EDGE = "(s) => Math.max(...[...document.querySelectorAll(s)].map((e) => e.getBoundingClientRect().right))"


def shown(first: object, last: object, total: object) -> str:
    """The pager's text, e.g. "1 to 50 of 302" written with an en dash."""
    return f"{first}\u2013{last} of {total}"


def open_dashboard(
    browser: Browser, server: Server, project: str, width: int = 1440, height: int = 900
) -> tuple[Page, list[str]]:
    page = browser.new_page(viewport={"width": width, "height": height})
    errors = console_errors(page)
    page.goto(f"{server.url}/#project={project}")
    page.fill("#api-key", KEY)
    page.click("#key-form button[type=submit]")
    expect(page.locator("#project")).to_be_visible()
    return page, errors


def api_total(server: Server, project_id: str, path: str, **params: Any) -> int:
    return int(server.api.get(f"/api/tam/projects/{project_id}/{path}", params=params).json()["total"])


def names_shown(page: Page, table: str = "companies") -> list[str]:
    return page.locator(f"#{table} tbody tr td:first-child").all_inner_texts()


def read_csv(path: str) -> tuple[bytes, list[dict[str, str]]]:
    raw = Path(path).read_bytes()
    return raw, list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))


def test_the_page_and_its_files_carry_csp_and_nosniff(server: Server) -> None:
    for path in ("/", "/static/dashboard.js", "/static/dashboard.css", "/static/favicon.svg"):
        response = server.api.get(path, headers={"x-api-key": ""})
        assert response.status_code == 200, path
        csp = response.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "script-src 'self'" in csp and "default-src 'none'" in csp
        assert "unsafe-inline" not in csp
        assert response.headers["x-content-type-options"] == "nosniff"


def test_a_first_visit_asks_for_the_key_with_nothing_refused_or_logged(server: Server, browser: Browser) -> None:
    page = browser.new_page()
    errors = console_errors(page)
    refused: list[str] = []
    page.on("response", lambda r: refused.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    page.goto(server.url + "/")
    expect(page.locator("#key-form")).to_be_visible()
    expect(page.locator("#app")).to_be_hidden()
    page.wait_for_load_state("networkidle")
    assert (errors, refused) == ([], [])


def test_companies_page_filter_search_and_export(server: Server, browser: Browser, project: str) -> None:
    page, errors = open_dashboard(browser, server, project)
    total = COMPANIES + len(TRICKY)
    expect(page.locator("#companies-shown")).to_have_text(shown(1, 50, total))
    expect(page.locator("#companies tbody tr")).to_have_count(50)
    expect(page.locator("#companies-prev")).to_be_disabled()
    first_page = names_shown(page)

    # Paging asks the server for the next 50; the last page is short and Next is off there.
    page.click("#companies-next")
    expect(page.locator("#companies-shown")).to_have_text(shown(51, 100, total))
    assert not set(names_shown(page)) & set(first_page)
    for _ in range(5):
        page.click("#companies-next")
    expect(page.locator("#companies-shown")).to_have_text(shown(301, total, total))
    expect(page.locator("#companies tbody tr")).to_have_count(total - 300)
    expect(page.locator("#companies-next")).to_be_disabled()
    page.click("#companies-prev")
    expect(page.locator("#companies-shown")).to_have_text(shown(251, 300, total))

    # The status filter starts again at the first page, with the server's count.
    qualified = api_total(server, project, "companies", status="qualified")
    assert 0 < qualified < total
    page.select_option("#company-status", "qualified")
    expect(page.locator("#companies-shown")).to_have_text(shown(1, min(50, qualified), qualified))
    assert set(page.locator("#companies tbody td[data-label=status]").all_inner_texts()) == {"qualified"}

    # Search matches a name or a domain, ignoring case, together with the status filter.
    page.select_option("#company-status", "")
    page.fill("#company-search", "müller 東京 GMBH")  # SQLite folds ASCII case only: ü is typed as stored
    expect(page.locator("#companies-shown")).to_have_text(shown(1, 1, 1))
    expect(page.locator("#companies tbody")).to_contain_text("Müller 東京 GmbH")
    page.fill("#company-search", "FORMULA.example")
    expect(page.locator("#companies tbody tr")).to_have_count(1)
    expect(page.locator("#companies tbody")).to_contain_text("=HYPERLINK")
    some = server.api.get(f"/api/tam/projects/{project}/companies", params={"offset": 123, "limit": 1}).json()
    word = some["items"][0]["name"].split()[0]
    expected = api_total(server, project, "companies", q=word, status="disqualified")
    page.fill("#company-search", word.upper())
    page.select_option("#company-status", "disqualified")
    expect(page.locator("#companies-shown")).to_have_text(shown(1, min(50, expected), expected) if expected else "none")

    # Export writes every row matching the filter (not just the page shown), in Excel-safe CSV.
    page.fill("#company-search", "")
    page.select_option("#company-status", "")
    expect(page.locator("#companies-shown")).to_have_text(shown(1, 50, total))
    with page.expect_download() as download:
        page.click("#company-export")
    assert download.value.suggested_filename == "mid-market-logistics-saas-companies.csv"
    raw, rows = read_csv(download.value.path())
    assert raw.startswith(b"\xef\xbb\xbf") and b"\r\n" in raw
    assert len(rows) == total
    by_domain = {r["domain"]: r for r in rows}
    assert by_domain["formula.example"]["name"] == '\'=HYPERLINK("http://evil.example","click")'
    assert by_domain["formula.example"]["employee_range"] == "51-200"
    assert by_domain["mueller.example"]["name"] == "Müller 東京 GmbH"
    assert by_domain["at-risk.example"]["name"] == "'@risk Partners"
    assert by_domain["at-risk.example"]["employee_range"] == "10001+"
    assert {r["qualification_status"] for r in rows} <= {"qualified", "disqualified", "error"}
    page.select_option("#company-status", "qualified")
    expect(page.locator("#companies-shown")).to_contain_text(f"of {qualified}")
    with page.expect_download() as download:
        page.click("#company-export")
    _, rows = read_csv(download.value.path())
    assert len(rows) == qualified and {r["qualification_status"] for r in rows} == {"qualified"}
    assert errors == []


def test_contacts_reasons_and_linkedin_links(server: Server, browser: Browser, project: str) -> None:
    page, errors = open_dashboard(browser, server, project)
    contacts = api_total(server, project, "contacts")
    assert contacts > 50
    expect(page.locator("#contacts-shown")).to_have_text(shown(1, 50, contacts))
    page.click("#contacts-next")
    expect(page.locator("#contacts-shown")).to_have_text(shown(51, min(100, contacts), contacts))

    # LinkedIn is a link to the profile that opens in a new tab, labelled with the check's result.
    first = server.api.get(f"/api/tam/projects/{project}/contacts", params={"offset": 50, "limit": 1}).json()
    person = first["items"][0]
    link = page.locator("#contacts tbody tr").first.locator("td[data-label=LinkedIn] a")
    expect(link).to_have_attribute("href", person["linkedinUrl"])
    expect(link).to_have_attribute("target", "_blank")
    expect(link).to_have_attribute("rel", "noopener noreferrer")
    expect(link).to_have_text("active" if person["linkedinActive"] else "inactive")

    # Search by name, title or email domain.
    search = person["email"].split("@")[1].upper() if person["email"] else person["fullName"]
    found = api_total(server, project, "contacts", q=search)
    assert 0 < found < contacts
    page.fill("#contact-search", search)
    expect(page.locator("#contacts-shown")).to_have_text(shown(1, min(50, found), found))
    expect(page.locator("#contacts tbody")).to_contain_text(person["fullName"])

    # The email status filter, alone and with the search.
    page.fill("#contact-search", "")
    page.select_option("#contact-status", "verified")
    verified = api_total(server, project, "contacts", emailStatus="verified")
    assert 50 < verified < contacts
    expect(page.locator("#contacts-shown")).to_have_text(shown(1, 50, verified))
    emails = page.locator("#contacts tbody td[data-label=email]").all_inner_texts()
    assert len(emails) == 50 and all(e.endswith("(verified)") for e in emails)
    page.fill("#contact-search", search)
    verified = api_total(server, project, "contacts", q=search, emailStatus="verified")
    expect(page.locator("#contacts-shown")).to_have_text(shown(1, verified, verified) if verified else "none")

    # Contacts export names each contact's company.
    with page.expect_download() as download:
        page.click("#contact-export")
    _, rows = read_csv(download.value.path())
    assert len(rows) == verified and {r["email_status"] for r in rows} <= {"verified"}
    assert all(r["company_domain"] and r["company_name"] for r in rows)
    page.select_option("#contact-status", "")
    with page.expect_download() as download:
        page.click("#contact-export")
    _, rows = read_csv(download.value.path())
    assert len(rows) == found and person["id"] in {r["id"] for r in rows}

    # A long reason shows its first words and opens in full on demand.
    company = next(
        c
        for c in server.api.get(f"/api/tam/projects/{project}/companies", params={"limit": 50}).json()["items"]
        if len(c["qualificationReason"] or "") > 80
    )
    row = page.locator("#companies tbody tr", has_text=company["domain"])
    reason = row.locator("td.reason")
    expect(reason).not_to_contain_text(company["qualificationReason"])
    expect(reason).to_contain_text("…")
    expect(reason).to_have_attribute("title", company["qualificationReason"])
    reason.locator("button", has_text="more").click()
    expect(reason).to_contain_text(company["qualificationReason"])
    reason.locator("button", has_text="less").click()
    expect(reason).not_to_contain_text(company["qualificationReason"])
    assert errors == []


def test_create_a_project_and_import_a_csv_from_the_page(server: Server, browser: Browser, tmp_path: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors = console_errors(page)
    page.goto(server.url + "/")
    page.fill("#api-key", KEY)
    page.click("#key-form button[type=submit]")
    expect(page.locator("#app")).to_be_visible()

    page.click("#new-project")
    page.fill("#project-name-input", "Nordic fintech")
    page.fill("#project-icp-input", "Payments companies in the Nordics")
    page.fill("#project-titles-input", "CFO, Head of Finance")
    page.fill("#project-countries-input", "se, no")
    page.click("#project-form button[type=submit]")
    expect(page.locator("#project-name")).to_have_text("Nordic fintech")
    expect(page.locator("#projects a.selected")).to_have_text("Nordic fintech")
    (created,) = [p for p in server.api.get("/api/tam/projects").json()["items"] if p["name"] == "Nordic fintech"]
    assert (created["targetTitles"], created["countries"]) == (["CFO", "Head of Finance"], ["SE", "NO"])

    # What Excel writes in much of Europe: a BOM, semicolons, a "Website" column, quoted cells with ; and
    # a newline, CRLF line ends. One row repeats a domain, one has none.
    lines = [
        "Company;Website;Employees",
        "Klarna;https://www.klarna.com/;5001,10000",
        '"Trustly; AB";trustly.com;"501,1000"',
        '"Zettle\nby PayPal";zettle.com;',
        "Klarna again;klarna.com;",
        "No site;;",
    ] + [f"Fintech {i};fintech{i}.se;11,50" for i in range(120)]
    upload = tmp_path / "companies.csv"
    upload.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode("utf-8") + b"\r\n")
    page.set_input_files("#import-file", str(upload))
    page.click("#import")
    result = page.locator("#import-result")
    expect(result).to_contain_text("imported 123, skipped 0 already in the project")
    expect(result).to_contain_text("1 repeated in the file (line 6: klarna.com, first on line 2)")  # line 4 holds 2
    expect(result).to_contain_text("rejected 1 (line 7: no domain: ")
    page.set_input_files("#import-file", str(upload))
    page.click("#import")
    expect(result).to_contain_text("imported 0, skipped 123 already in the project")
    expect(page.locator("#companies-shown")).to_have_text(shown(1, 50, 123))
    page.fill("#company-search", "trustly")
    expect(page.locator("#companies tbody tr")).to_have_count(1)
    expect(page.locator("#companies tbody")).to_contain_text("Trustly; AB")
    stored = server.api.get(f"/api/tam/projects/{created['id']}/companies", params={"q": "zettle"}).json()
    assert stored["items"][0]["name"] == "Zettle\nby PayPal"
    klarna = server.api.get(f"/api/tam/projects/{created['id']}/companies", params={"q": "klarna"}).json()
    assert [(c["name"], c["domain"], c["employeeRange"]) for c in klarna["items"]] == [
        ("Klarna", "klarna.com", "5001,10000")
    ]

    # A file without a domain column is refused on the page, naming the header it saw.
    bad = tmp_path / "bad.csv"
    bad.write_text("Firm,City\nAcme,Oslo\n")
    page.set_input_files("#import-file", str(bad))
    page.click("#import")
    expect(page.locator("#error")).to_contain_text("No domain column in the header (found: Firm, City)")
    assert errors == []


def test_usable_at_390_px_and_the_readme_screenshot(server: Server, browser: Browser, project: str) -> None:
    page, errors = open_dashboard(browser, server, project, width=390, height=844)
    expect(page.locator("#companies tbody tr")).to_have_count(50)
    expect(page.locator("#contacts tbody tr")).to_have_count(50)
    overflow = "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    assert page.evaluate(overflow) == 0
    # Every part stays on the screen: the tables' cells, the toolbars, the jobs, the forms.
    for selector in ("#companies tbody td", "#contacts tbody td", "#jobs tbody td", ".toolbar", ".pager", ".card"):
        right = page.evaluate(RIGHT_EDGE, selector)
        assert right <= 390, (selector, right)
    page.locator("#companies tbody td.reason button", has_text="more").first.click()
    page.click("#new-project")
    assert page.evaluate(overflow) == 0
    page.screenshot(path=str(ROOT / ".services" / "dashboard-390-top.png"))
    page.locator("#companies-list").scroll_into_view_if_needed()
    page.evaluate("() => document.querySelector('#companies-list').scrollIntoView()")
    page.screenshot(path=str(ROOT / ".services" / "dashboard-390-companies.png"))
    job = page.locator("#jobs tbody tr").first
    expect(job.locator("td[data-label=status]")).to_have_text("completed")
    assert errors == []
    page.close()

    # The README's picture: a few hundred companies after qualify, contacts and LinkedIn checks.
    page, errors = open_dashboard(browser, server, project, width=1440, height=1300)
    expect(page.locator("#companies tbody tr")).to_have_count(50)
    SCREENSHOT.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOT))
    assert SCREENSHOT.stat().st_size > 10_000
    assert errors == []
