"""`tam jobs [--project ID]`: recent jobs as a table."""

from __future__ import annotations

import typer
from rich.table import Table

from tam.containers import provide
from tam.domain.model import Job, JobStatus
from tam.domain.pricing import PriceTable
from tam.entrypoints.cli.session import ensure_project, opened, parse_id, run, wide_console
from tam.ports.storage import JobRepo

STATUS_STYLE = {
    JobStatus.PENDING: "yellow",
    JobStatus.RUNNING: "cyan",
    JobStatus.COMPLETED: "green",
    JobStatus.FAILED: "red",
    JobStatus.CANCELLED: "magenta",
}


def register(app: typer.Typer) -> None:
    @app.command("jobs")
    def jobs(
        project: str | None = typer.Option(None, "--project", help="Only this project's jobs."),
        limit: int = typer.Option(50, "--limit", min=1, help="Show at most this many, newest first."),
    ) -> None:
        """List jobs, newest first, with status, progress and message."""
        project_id = parse_id(project) if project is not None else None

        async def main() -> tuple[list[Job], PriceTable]:
            async with opened() as container:
                if project_id is not None:
                    await ensure_project(container, project_id)
                repo: JobRepo = await provide(container.jobs)
                return await repo.list(project_id), await provide(container.prices)

        found, prices = run(main)
        found = found[:limit]
        if not found:
            print("no jobs yet; start one with `tam run STEP --project ID`")
            return
        table = Table(show_header=True, header_style="bold")
        for column in ("id", "project", "step", "status", "progress", "done", "failed", "cost", "message", "created"):
            table.add_column(column, justify="right" if column in {"progress", "done", "failed", "cost"} else "left")
        for job in found:
            style = STATUS_STYLE[job.status]
            table.add_row(
                str(job.id),
                str(job.project_id)[:8],
                job.job_type.value,
                f"[{style}]{job.status.value}[/]",
                f"{job.progress}%",
                f"{job.items_done}/{job.items_total}",
                str(job.items_failed),
                f"${prices.cost(job.usage):,.4f}",
                job.error or job.message or "",
                job.created_at.strftime("%Y-%m-%d %H:%M:%S") if job.created_at else "",
            )
        wide_console().print(table)
