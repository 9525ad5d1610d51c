"""`tam companies import FILE.csv --project ID`: bad and repeated rows are reported by line, good rows go in."""

from __future__ import annotations

import csv
import re
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import typer

from tam.domain.domains import normalise_domain
from tam.domain.model import InvalidInput
from tam.domain.services.projects import CompanyRow
from tam.entrypoints.cli.session import ensure_project, fail, opened, parse_id, run

companies_app = typer.Typer(no_args_is_help=True, help="Import companies into a project.")

# Loose header matching: lower case, punctuation and underscores as spaces ("Company_Name" = "company name").
COLUMNS: dict[str, tuple[str, ...]] = {
    "domain": ("domain", "website", "url", "company domain", "company website", "company url", "web", "site"),
    "name": ("name", "company", "company name", "organization", "organisation", "account name"),
    "description": ("description", "company description", "about"),
    "country": ("country", "country code", "hq country"),
    "employee_range": ("employee range", "employees", "size", "company size", "employee count", "headcount"),
    "linkedin_url": ("linkedin", "linkedin url", "company linkedin", "company linkedin url", "linkedin page"),
}
BATCH = 1000


def header_key(text: str) -> str:
    return " ".join(re.sub(r"[^a-z0-9]+", " ", text.lower()).split())


def match_columns(header: Sequence[str]) -> dict[str, int]:
    """Field name -> column index, for the first column whose header matches each field."""
    found: dict[str, int] = {}
    keys = [header_key(h) for h in header]
    for field, aliases in COLUMNS.items():
        for alias in aliases:
            if alias in keys:
                found[field] = keys.index(alias)
                break
    return found


@dataclass(frozen=True, slots=True)
class Rejected:
    line: int
    reason: str
    duplicate: bool = False


DELIMITERS = ",;\t"  # what Excel and Google Sheets write: comma, semicolon (much of Europe), tab
SAMPLE_BYTES = 64 * 1024


def read_rows(path: Path) -> tuple[list[CompanyRow], list[Rejected], dict[str, int]]:
    """The good rows, the rejected ones, and the line of each good row's (normalised) domain."""
    try:
        handle = path.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        fail(f"cannot read {path}: {exc.strerror or exc}")
    with handle:
        try:
            sample = handle.read(SAMPLE_BYTES)
            handle.seek(0)
            return _parse(csv.reader(handle, dialect=sniff(sample)))
        except UnicodeDecodeError:
            fail(f"{path} is not UTF-8 text")
        except csv.Error as exc:
            fail(f"{path} is not a readable CSV file: {exc}")


def sniff(sample: str) -> type[csv.Dialect] | csv.Dialect:
    """The file's dialect: csv.Sniffer's guess among comma, semicolon and tab, unless another of
    them is the one that splits the header into a domain column (the sniffer can be misled by
    commas inside a semicolon-separated file's cells)."""
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=DELIMITERS)
    except csv.Error:  # one column, or too few rows to tell
        dialect = csv.excel
    header_line = sample.splitlines()[0] if sample else ""
    if "domain" in match_columns(next(csv.reader([header_line], dialect=dialect), [])):
        return dialect
    for delimiter in DELIMITERS:
        if "domain" in match_columns(next(csv.reader([header_line], delimiter=delimiter), [])):
            return csv.excel_tab if delimiter == "\t" else _Delimited(delimiter)
    return dialect


class _Delimited(csv.excel):
    def __init__(self, delimiter: str) -> None:
        super().__init__()
        self.delimiter = delimiter


def _parse(reader: Iterator[list[str]]) -> tuple[list[CompanyRow], list[Rejected], dict[str, int]]:
    header = next(reader, None)
    if header is None:
        fail("the CSV file is empty")
    columns = match_columns(header)
    if "domain" not in columns:
        seen = ", ".join(repr(h) for h in header)
        if len(seen) > 200:
            seen = seen[:197] + "..."
        fail(
            f"no domain column in the header (expected one of: {', '.join(COLUMNS['domain'][:4])}; "
            f"the header read was: {seen})"
        )
    good: list[CompanyRow] = []
    bad: list[Rejected] = []
    first_line: dict[str, int] = {}  # normalised domain -> the line that brought it
    for cells in reader:
        line = reader.line_num  # type: ignore[attr-defined]
        if not any(c.strip() for c in cells):
            continue

        def cell(field: str, cells: list[str] = cells) -> str | None:
            index = columns.get(field)
            value = cells[index].strip() if index is not None and index < len(cells) else ""
            return value or None

        domain = cell("domain")
        try:
            normalised = normalise_domain(domain)
        except InvalidInput as exc:
            bad.append(Rejected(line, str(exc)))
            continue
        if normalised in first_line:
            bad.append(Rejected(line, f"duplicate of line {first_line[normalised]} ({normalised})", duplicate=True))
            continue
        first_line[normalised] = line
        good.append(
            CompanyRow(
                name=cell("name") or normalised,
                domain=domain,
                description=cell("description"),
                country=cell("country"),
                employee_range=cell("employee_range"),
                linkedin_url=cell("linkedin_url"),
            )
        )
    return good, bad, first_line


def _normalised(domain: str) -> str:
    try:
        return normalise_domain(domain)
    except InvalidInput:
        return domain


def register(app: typer.Typer) -> None:
    app.add_typer(companies_app, name="companies")


@companies_app.command("import")
def import_(
    file: Path = typer.Argument(
        ..., help="CSV file with a header row (domain/website/url, name/company, ...).", show_default=False
    ),
    project: str = typer.Option(..., "--project", help="Project id."),
) -> None:
    """Import companies from a CSV file (comma, semicolon or tab separated, UTF-8). Rows without a
    usable domain, and repeats of a domain earlier in the file, are reported by line and skipped."""
    project_id = parse_id(project)
    rows, rejected, line_of = read_rows(file)
    for r in rejected:
        print(f"tam: {file.name}:{r.line}: {r.reason}", file=sys.stderr)

    async def main() -> tuple[int, int]:
        async with opened() as services:
            await ensure_project(services, project_id)
            importer = services.import_companies
            inserted = skipped = 0
            for start in range(0, len(rows), BATCH):
                result = await importer(project_id, rows[start : start + BATCH])
                inserted += result.inserted
                skipped += result.skipped
                # rows the importer or the database refused (a NUL byte, say): listed, the others went in
                for domain, reason in result.rejected:
                    line = line_of.get(_normalised(domain), 0)
                    rejected.append(Rejected(line, reason))
                    print(f"tam: {file.name}:{line}: {reason}", file=sys.stderr)
            return inserted, skipped

    inserted, skipped = run(main)
    duplicates = sum(r.duplicate for r in rejected)
    print(
        f"inserted {inserted}, skipped {skipped} (already in the project), "
        f"duplicates {duplicates} (in the file), rejected {len(rejected) - duplicates}"
    )
