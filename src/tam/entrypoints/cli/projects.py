"""`tam projects create|list`."""

from __future__ import annotations

import typer
from rich.table import Table

from tam.domain.model import Project, QualificationStatus
from tam.entrypoints.cli.session import fail, opened, run, wide_console

projects_app = typer.Typer(no_args_is_help=True, help="Create and list projects (one TAM list each).")


def register(app: typer.Typer) -> None:
    app.add_typer(projects_app, name="projects")


@projects_app.command("create")
def create(
    name: str = typer.Option(..., "--name", help="Project name."),
    icp: str = typer.Option(..., "--icp", help="Ideal customer profile, free text (drives sourcing and qualifying)."),
    titles: list[str] = typer.Option([], "--title", help="Target job title (repeatable)."),
    seniorities: list[str] = typer.Option([], "--seniority", help="Target seniority (repeatable)."),
    countries: list[str] = typer.Option([], "--country", help="ISO country code (repeatable)."),
    employee_range: str | None = typer.Option(None, "--employee-range", help='Employee range, e.g. "51,500".'),
    max_contacts: int = typer.Option(3, "--max-contacts", min=1, max=100, help="Contacts to find per company."),
) -> None:
    """Create a project and print its id."""
    if not name.strip() or not icp.strip():
        fail("--name and --icp must not be empty")
    project = Project(
        name=name,
        icp=icp,
        target_titles=tuple(titles),
        target_seniorities=tuple(seniorities),
        countries=tuple(countries),
        employee_range=employee_range,
        max_contacts_per_company=max_contacts,
    )

    async def main() -> Project:
        async with opened() as services:
            return await services.create_project(project)

    print(run(main).id)


@projects_app.command("list")
def list_() -> None:
    """List projects with their companies by status and contacts."""

    async def main() -> Table:
        async with opened() as services:
            projects = await services.projects.list()
            companies, contacts = services.companies, services.contacts
            table = Table(show_header=True, header_style="bold")
            for column in ("id", "name", "created", "companies", "qualified", "pending", "contacts"):
                table.add_column(column, justify="right" if column in {"companies", "qualified", "pending"} else "left")
            for project in projects:
                counts = await companies.count_by_status(project.id)
                stats = await contacts.stats(project.id)
                table.add_row(
                    str(project.id),
                    project.name,
                    project.created_at.strftime("%Y-%m-%d %H:%M") if project.created_at else "",
                    str(sum(counts.values())),
                    str(counts.get(QualificationStatus.QUALIFIED, 0)),
                    str(counts.get(QualificationStatus.PENDING, 0)),
                    str(stats.total),
                )
            return table

    table = run(main)
    if not table.rows:
        print("no projects yet; create one with `tam projects create --name ... --icp ...`")
        return
    wide_console().print(table)
