"""`tam demo`: the whole pipeline on a sample project with simulated providers, no keys, no servers."""

from __future__ import annotations

import asyncio
import dataclasses
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from uuid import UUID

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Column, Table

from tam.domain.model import Job, JobType, Project, QualificationStatus
from tam.ports.storage import JobRepo
from tam.settings import Settings

if TYPE_CHECKING:
    from tam.containers import Services

SAMPLE = Project(
    name="Demo: mid-market B2B SaaS",
    icp="B2B software companies with 50-500 employees selling to operations and finance teams",
    target_titles=("Head of Operations", "VP Finance", "COO", "Head of Revenue Operations"),
    target_seniorities=("Head", "Vice President", "C-Suite"),
    countries=("US", "GB", "DE"),
    employee_range="51,500",
)

# Each step under its one name, the job type that `tam run`, `tam jobs`, the API and the logs show.
STEPS = tuple(
    (t, t.value)
    for t in (
        JobType.SOURCE_COMPANIES,
        JobType.QUALIFY,
        JobType.FIND_CONTACTS,
        JobType.CHECK_LINKEDIN,
        JobType.REFINE_DISCOLIKE,
    )
)
NARROW = 100  # below this many columns the bars leave out the rate and the time left
REFRESH = 0.2  # seconds between progress writes and redraws


class RateColumn(TextColumn):
    def __init__(self, table_column: Column | None = None) -> None:
        super().__init__("", table_column=table_column)

    def render(self, task):  # type: ignore[no-untyped-def]
        speed = task.finished_speed or task.speed
        return super().render(task) if speed is None else f"{speed:6.1f}/s"


async def draw(bars: Progress, task: TaskID, jobs: JobRepo, job_id: UUID, interval: float) -> None:
    """Draws the job's progress as a rich bar from its row, the one the dashboard and `tam run` read."""
    while True:
        await asyncio.sleep(interval)
        job = await jobs.get(job_id)
        total = job.items_total
        bars.update(task, total=max(total, 1), completed=job.items_done + job.items_failed, message=job.message or "")


@dataclass
class StepResult:
    label: str
    job: Job
    seconds: float


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        companies: int = typer.Option(150, "--companies", min=5, max=10_000, help="How many companies to source."),
        seed: int = typer.Option(7, "--seed", help="Seed of the simulated providers' answers."),
        latency: float = typer.Option(0.3, "--latency", min=0, help="Mean simulated call latency, seconds."),
        db: Path | None = typer.Option(None, "--db", help="SQLite file to keep (default: a temporary one)."),
        fault_rate: float = typer.Option(
            0.02, "--fault-rate", min=0, max=1, help="Share of calls that fail transiently."
        ),
    ) -> None:
        """Run all five steps on a sample project with simulated providers and live progress bars."""
        with tempfile.TemporaryDirectory(prefix="tam-demo-") as tmp:
            path = db or Path(tmp) / "tam-demo.db"
            settings = Settings(
                tam_store="sqlite",
                tam_sqlite_path=str(path),
                tam_providers="sandbox",
                tam_sandbox_seed=seed,
                tam_sandbox_latency=latency,
                tam_sandbox_fault_rate=fault_rate,
                tam_source_companies_max_records=companies,
            )
            results = asyncio.run(run_demo(settings, kept=db is not None))
        if any(r.job.error for r in results):
            raise SystemExit(1)


async def run_demo(settings: Settings, kept: bool = False) -> list[StepResult]:
    from tam.containers import open_services, run_job

    console = Console()
    runner = dataclasses.replace(settings.runner_settings(), flush_interval=REFRESH)
    async with open_services(settings, runner_settings=runner) as services:
        jobs = services.jobs
        project = await services.projects.add(SAMPLE)
        where = settings.tam_sqlite_path if kept else f"{settings.tam_sqlite_path} (temporary; --db PATH keeps it)"
        console.print(f"[bold]tam demo[/]: project [cyan]{project.name}[/], simulated providers")
        console.print(f"SQLite database: {where}")
        narrow = console.width < NARROW
        used = 15 + 12 + 7 + 7 + 4 if narrow else 15 + 20 + 7 + 8 + 7 + 7 + 6  # columns and gaps
        bars = Progress(
            TextColumn("{task.description}", table_column=Column(min_width=15, no_wrap=True)),
            BarColumn(bar_width=12 if narrow else 20),
            MofNCompleteColumn(table_column=Column(min_width=7, no_wrap=True)),
            *(() if narrow else (RateColumn(table_column=Column(min_width=8, no_wrap=True)), TimeRemainingColumn())),
            TimeElapsedColumn(),
            TextColumn(
                "[dim]{task.fields[message]}",
                table_column=Column(no_wrap=True, overflow="ellipsis", max_width=max(8, console.width - used - 1)),
            ),
            console=console,
        )
        results = []
        with bars:
            for job_type, label in STEPS:
                job = await jobs.add(Job(project_id=project.id, job_type=job_type))
                task = bars.add_task(label, total=None, message="starting")
                drawing = asyncio.create_task(draw(bars, task, jobs, job.id, REFRESH))
                started = time.perf_counter()
                try:
                    job = await run_job(services, job.id, settings.time_limit(job_type))
                finally:
                    drawing.cancel()
                results.append(StepResult(label, job, time.perf_counter() - started))
                done = job.items_done + job.items_failed
                bars.update(task, total=max(job.items_total, 1), completed=done, message=job.error or job.message or "")
        console.print(await summary(services, project, results))
        return results


async def summary(services: Services, project: Project, results: list[StepResult]) -> Table:
    counts = await services.companies.count_by_status(project.id)
    stats = await services.contacts.stats(project.id)
    table = Table(title="Summary", show_header=True)
    table.add_column("step")
    table.add_column("status")
    table.add_column("time", justify="right")
    table.add_column("result and usage")
    for r in results:
        usage = ", ".join(f"{k}={v}" for k, v in sorted(r.job.usage.counts.items())) or "-"
        result = r.job.error or r.job.message or ""
        table.add_row(r.label, r.job.status.value, f"{r.seconds:.1f} s", f"{result}\n[dim]{usage}[/]")
    table.add_section()
    by_status = ", ".join(f"{counts.get(st, 0)} {st.value}" for st in QualificationStatus)
    table.add_row("companies", "", "", by_status)
    table.add_row(
        "contacts",
        "",
        "",
        f"{stats.total} contacts, {stats.with_email} emails found, "
        f"{stats.linkedin_active} LinkedIn profiles active, {stats.linkedin_inactive} inactive",
    )
    return table
