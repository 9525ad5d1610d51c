"""CSV as people have it: semicolon- and tab-separated files (what Excel writes in much of Europe),
"Website"/"URL" headers, repeats within a file named by line; and exports that open cleanly in Excel
and Google Sheets: 0644, UTF-8 with a BOM, no cell run as a formula, ranges written 51-200."""

from __future__ import annotations

import csv
import io
import stat
from pathlib import Path

from tests.cli.conftest import Cli

SEMICOLON = """\
Company Name;Website;Employees;Country;Description
Müller GmbH;https://www.mueller.de/;51,200;de;Maschinenbau, Stuttgart
東京 Trading;tokyo-trading.jp;11,50;jp;"Import; Export"
=HYPERLINK("http://evil.example","click");evil.example;;;+1 sales
Müller again;mueller.de;;;repeat of line 2
@SUM(A1);sum.example;10001,;;-minus first
"""

TABS = (
    "Company\tURL\tEmployees\n"
    "Initech\thttp://initech.co.uk\t201,500\n"
    "Tyrell\ttyrell.com\t\n"
    "Initech 2\tinitech.co.uk\t\n"
)


def new_project(cli: Cli) -> str:
    return cli("projects", "create", "--name", "CSV", "--icp", "B2B").stdout.strip()


def test_a_semicolon_file_with_website_header_imports_and_names_repeats(cli: Cli, tmp_path: Path) -> None:
    project = new_project(cli)
    source = tmp_path / "europe.csv"
    source.write_text(SEMICOLON, encoding="utf-8")
    imported = cli("companies", "import", str(source), "--project", project)
    assert imported.stdout.strip() == (
        "inserted 4, skipped 0 (already in the project), duplicates 1 (in the file), rejected 0"
    )
    assert imported.stderr.strip() == "tam: europe.csv:5: duplicate of line 2 (mueller.de)"
    stored = {c["domain"]: c for c in cli.rows("tam_companies", project)}
    assert set(stored) == {"mueller.de", "tokyo-trading.jp", "evil.example", "sum.example"}
    assert stored["mueller.de"]["name"] == "Müller GmbH"
    assert stored["mueller.de"]["employee_range"] == "51,200"
    assert stored["mueller.de"]["country"] == "DE"
    assert stored["mueller.de"]["description"] == "Maschinenbau, Stuttgart"
    assert stored["tokyo-trading.jp"]["name"] == "東京 Trading"
    assert stored["tokyo-trading.jp"]["description"] == "Import; Export"
    assert stored["evil.example"]["name"] == '=HYPERLINK("http://evil.example","click")'

    # A tab-separated file with a "URL" header, into the same project.
    tabs = tmp_path / "sheet.tsv"
    tabs.write_text(TABS, encoding="utf-8")
    second = cli("companies", "import", str(tabs), "--project", project)
    assert second.stdout.strip() == (
        "inserted 2, skipped 0 (already in the project), duplicates 1 (in the file), rejected 0"
    )
    assert second.stderr.strip() == "tam: sheet.tsv:4: duplicate of line 2 (initech.co.uk)"

    # Export: every row as stored, neutralised and with ranges as 51-200, in a file others can read.
    out = tmp_path / "export.csv"
    cli("export", "companies", "--project", project, "-o", str(out))
    assert stat.S_IMODE(out.stat().st_mode) == 0o644  # the test runs with umask 022 (conftest)
    raw = out.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf"), "UTF-8 with a BOM, for Excel"
    rows = list(csv.DictReader(io.StringIO(raw.decode("utf-8-sig"))))
    by_domain = {r["domain"]: r for r in rows}
    assert len(rows) == 6
    expected = {
        "mueller.de": ("Müller GmbH", "51-200", "Maschinenbau, Stuttgart"),
        "tokyo-trading.jp": ("東京 Trading", "11-50", "Import; Export"),
        "evil.example": ('\'=HYPERLINK("http://evil.example","click")', "", "'+1 sales"),
        "sum.example": ("'@SUM(A1)", "10001+", "'-minus first"),
        "initech.co.uk": ("Initech", "201-500", ""),
        "tyrell.com": ("Tyrell", "", ""),
    }
    for domain, (name, employees, description) in expected.items():
        row = by_domain[domain]
        assert (row["name"], row["employee_range"], row["description"]) == (name, employees, description), row
    for row in rows:  # no cell of any row starts a formula
        assert not any(value.startswith(("=", "+", "-", "@")) for value in row.values()), row


def test_no_domain_column_prints_the_header_it_read(cli: Cli, tmp_path: Path) -> None:
    project = new_project(cli)
    source = tmp_path / "names.csv"
    source.write_text("Firma;Stadt\nMüller GmbH;Stuttgart\n", encoding="utf-8")
    result = cli("companies", "import", str(source), "--project", project, check=False)
    assert result.returncode == 1
    assert result.stderr.count("\n") == 1, result.stderr
    assert "no domain column" in result.stderr
    assert "the header read was: 'Firma', 'Stadt'" in result.stderr


def test_rows_the_store_cannot_hold_are_listed_by_line_and_the_others_go_in(cli: Cli, tmp_path: Path) -> None:
    project = new_project(cli)
    source = tmp_path / "mixed.csv"
    too_long = ".".join(["abcdefghij" * 6] * 5) + ".com"  # 309 characters: past a DNS name's 253
    source.write_text(
        f"name,domain\nGood,good.example\nBad\x00name,bad.example\nLong,{too_long}\nFine,fine.example\n",
        encoding="utf-8",
    )
    result = cli("companies", "import", str(source), "--project", project)
    assert "inserted 2," in result.stdout and "rejected 2" in result.stdout, result.stdout
    lines = result.stderr.splitlines()
    assert any(line.startswith("tam: mixed.csv:3: ") and "NUL" in line for line in lines), result.stderr
    assert any(line.startswith("tam: mixed.csv:4: ") and "longer than 253" in line for line in lines), result.stderr
    assert sorted(r["domain"] for r in cli.rows("tam_companies", project)) == ["fine.example", "good.example"]
