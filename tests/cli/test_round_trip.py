"""Create a project, import a CSV with good and bad rows, run every step, export both CSVs and check
them row by row against the store: all through the `tam` command in subprocesses."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from tests.cli.conftest import Cli

CSV = """\
Company Name,Website,Employee Range,Country,LinkedIn URL,Notes
Acme,https://www.Acme.com/about,51-200,us,https://www.linkedin.com/company/acme,first
Broken,not a domain,,,,bad: no dot
Acme again,acme.com,,,,duplicate of line 2
Nameless,,,,,bad: empty domain
"Globex, Inc.",globex.io,501-1000,de,,"a quoted, comma"

Initech,http://initech.co.uk/,11-50,gb,,after a blank line
"""


def read_csv(path: Path) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(path.read_text(encoding="utf-8-sig"))))


def text(value: Any) -> str:
    return "" if value is None else str(value)


def flag(value: int | None) -> str:
    return "" if value is None else ("true" if value else "false")


def test_import_run_every_step_and_export(cli: Cli, tmp_path: Path) -> None:
    created = cli(
        "projects", "create", "--name", "Round trip", "--icp", "B2B SaaS for finance teams",
        "--title", "CFO", "--title", "VP Finance", "--seniority", "C-Suite", "--country", "us",
        "--employee-range", "51,500", "--max-contacts", "2",
    )  # fmt: skip
    project_id = created.stdout.strip()
    assert len(project_id) == 36
    assert project_id in cli("projects", "list").stdout

    source = tmp_path / "companies.csv"
    source.write_text(CSV, encoding="utf-8")
    imported = cli("companies", "import", str(source), "--project", project_id)
    assert imported.stdout.strip() == (
        "inserted 3, skipped 0 (already in the project), duplicates 1 (in the file), rejected 2"
    )
    errors = imported.stderr.strip().splitlines()
    assert [line.split(":")[:3] for line in errors] == [
        ["tam", " companies.csv", "3"],
        ["tam", " companies.csv", "4"],
        ["tam", " companies.csv", "5"],
    ]
    assert "duplicate of line 2 (acme.com)" in errors[1]
    assert "not a domain" in errors[0]

    stored = {c["domain"]: c for c in cli.rows("tam_companies", project_id)}
    assert set(stored) == {"acme.com", "globex.io", "initech.co.uk"}
    assert stored["acme.com"]["name"] == "Acme"
    assert stored["acme.com"]["country"] == "US"
    assert stored["acme.com"]["employee_range"] == "51-200"
    assert stored["acme.com"]["linkedin_url"] == "https://www.linkedin.com/company/acme"
    assert stored["globex.io"]["name"] == "Globex, Inc."

    for step in ("source-companies", "qualify", "findContacts", "check_linkedin", "refine-discolike"):
        ran = cli("run", step, "--project", project_id)
        assert " completed" in ran.stdout, ran.stdout

    listed = cli("jobs", "--project", project_id).stdout
    assert listed.count("completed") == 5
    for job_type in ("sourceCompanies", "qualify", "findContacts", "checkLinkedin", "refineDiscolike"):
        assert job_type in listed

    companies_csv, contacts_csv = tmp_path / "companies-out.csv", tmp_path / "contacts-out.csv"
    cli("export", "companies", "--project", project_id, "-o", str(companies_csv))
    cli("export", "contacts", "--project", project_id, "-o", str(contacts_csv))

    companies = {c["id"]: c for c in cli.rows("tam_companies", project_id)}
    rows = read_csv(companies_csv)
    assert len(rows) == len(companies) > 40
    assert len({r["id"] for r in rows}) == len(rows)
    for row in rows:
        company = companies[row["id"]]
        for column in ("name", "domain", "country", "employee_range", "linkedin_url", "source",
                       "qualification_status", "qualification_reason", "description"):  # fmt: skip
            expected = text(company[column])
            if column == "employee_range":  # stored as DiscoLike writes it ("51,200"), exported "51-200"
                expected = expected.replace(",", "-")
            assert row[column] == expected, (column, row)
        assert bool(row["qualified_at"]) == (company["qualified_at"] is not None)
        assert bool(row["contacts_searched_at"]) == (company["contacts_searched_at"] is not None)
    assert {r["domain"] for r in rows} >= {"acme.com", "globex.io", "initech.co.uk"}

    contacts = {c["id"]: c for c in cli.rows("tam_contacts", project_id)}
    rows = read_csv(contacts_csv)
    assert len(rows) == len(contacts) > 0

    for row in rows:
        contact = contacts[row["id"]]
        for column in ("company_id", "full_name", "first_name", "last_name", "title", "linkedin_url", "email",
                       "email_status", "provider_person_id", "linkedin_detail"):  # fmt: skip
            assert row[column] == text(contact[column]), (column, row)
        assert row["linkedin_active"] == flag(contact["linkedin_active"])
        assert row["company_domain"] == companies[contact["company_id"]]["domain"]
        assert row["linkedin_active"] in {"true", "false"}  # every contact was checked

    qualified_csv = tmp_path / "qualified.csv"
    cli("export", "companies", "--project", project_id, "-o", str(qualified_csv), "--status", "qualified")
    qualified = read_csv(qualified_csv)
    expected = [c for c in companies.values() if c["qualification_status"] == "qualified"]
    assert len(qualified) == len(expected) > 0
    assert {r["qualification_status"] for r in qualified} == {"qualified"}
