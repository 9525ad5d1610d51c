"""`tam jobs [--project ID]`: recent jobs as a table; `tam jobs cancel JOB`: stop one."""

from __future__ import annotations

from uuid import UUID

import typer
from rich.table import Table
from rich.text import Text

from tam.domain.model import Job, JobStatus
from tam.domain.pricing import PriceTable
from tam.entrypoints.cli.session import ensure_project, fail, opened, parse_id, run, wide_console
from tam.ports.storage import JobRepo

STATUS_STYLE = {
    JobStatus.PENDING: "yellow",
    JobStatus.RUNNING: "cyan",
    JobStatus.COMPLETED: "green",
    JobStatus.FAILED: "red",
    JobStatus.CANCELLED: "magenta",
}
WIDE = 140  # below this many columns the table leaves out the project and the date and shortens ids
SHORT_ID = 8  # `tam jobs cancel` takes this prefix of an id as well as the whole id

jobs_app = typer.Typer(
    invoke_without_command=True, help="List jobs (`tam jobs`), or cancel one (`tam jobs cancel JOB`)."
)


def register(app: typer.Typer) -> None:
    app.add_typer(jobs_app, name="jobs")


@jobs_app.callback()
def jobs(
    ctx: typer.Context,
    project: str | None = typer.Option(None, "--project", help="Only this project's jobs."),
    limit: int = typer.Option(50, "--limit", min=1, help="Show at most this many, newest first."),
) -> None:
    """List jobs, newest first, with status, progress, cost and message."""
    if ctx.invoked_subcommand is not None:
        return
    project_id = parse_id(project) if project is not None else None

    async def main() -> tuple[list[Job], PriceTable]:
        async with opened() as services:
            if project_id is not None:
                await ensure_project(services, project_id)
            return await services.jobs.list(project_id), services.prices

    found, prices = run(main)
    found = found[:limit]
    if not found:
        print("no jobs yet; start one with `tam run STEP --project ID`")
        return
    console = wide_console()
    wide = console.width >= WIDE
    columns = ["id", "project", "step", "status", "progress", "done", "failed", "cost", "message", "created"]
    if not wide:
        columns = [c for c in columns if c not in {"project", "created"}]
    rows = []
    for job in found:
        style = STATUS_STYLE[job.status]
        rows.append(
            {
                "id": str(job.id) if wide else str(job.id)[:SHORT_ID],
                "project": str(job.project_id)[:SHORT_ID],
                "step": job.job_type.value,
                "status": f"[{style}]{job.status.value}[/]",
                "progress": f"{job.progress}%",
                "done": f"{job.items_done}/{job.items_total}",
                "failed": str(job.items_failed),
                "cost": f"${prices.cost(job.usage):,.4f}",
                "message": job.error or job.message or "",
                "created": job.created_at.strftime("%Y-%m-%d %H:%M:%S") if job.created_at else "",
            }
        )
    # A terminal narrower than WIDE gets no borders and one line a job: every column keeps its width
    # and the message takes what is left, cut with an ellipsis.
    table = Table(show_header=True, header_style="bold") if wide else Table(header_style="bold", box=None)
    numeric = {"progress", "done", "failed", "cost"}
    for column in columns:
        longest = max(len(column), *(len(Text.from_markup(r[column]).plain) for r in rows))
        table.add_column(
            column,
            justify="right" if column in numeric else "left",
            no_wrap=not wide or column != "message",
            overflow="ellipsis" if column == "message" else "fold",
            min_width=None if column == "message" else longest,
        )
    for row in rows:
        table.add_row(*(row[c] for c in columns))
    console.print(table)


@jobs_app.command("cancel")
def cancel(
    job: str = typer.Argument(..., metavar="JOB", help=f"Job id, or its first {SHORT_ID} characters as listed."),
) -> None:
    """Cancel a pending or running job; its finished items stay."""

    async def main() -> Job:
        async with opened() as services:
            found = await _find(services.jobs, job)
            if found.status.finished:
                fail(f"job {found.id} is already {found.status.value}; nothing to cancel")
            return await services.jobs.cancel(found.id, services.clock.now())

    done = run(main)
    if done.status is not JobStatus.CANCELLED:  # it finished in the meantime
        fail(f"job {done.id} is already {done.status.value}; nothing to cancel")
    if done.items_total:
        progress = f"{done.items_done} of {done.items_total} items done, kept"
    else:
        progress = "nothing was done yet"
    print(f"cancelled job {done.id} ({done.job_type.value}; {progress})")


async def _find(repo: JobRepo, text: str) -> Job:
    text = text.strip().lower()
    try:
        return await repo.get(UUID(text))
    except ValueError:
        pass
    if len(text) < 4 or any(c not in "0123456789abcdef-" for c in text):
        fail(f"{text!r} is not a job id (a UUID, or the first {SHORT_ID} characters `tam jobs` shows)")
    matches = [j for j in await repo.list() if str(j.id).startswith(text)]
    if not matches:
        fail(f"no job id starts with {text!r} (see `tam jobs`)")
    if len(matches) > 1:
        fail(f"{len(matches)} jobs start with {text!r}; give more of the id")
    return matches[0]
