"""`tam run STEP --project ID`: create a job, dispatch it and follow its row with a progress bar."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import signal
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from tam.domain.model import Conflict, InvalidInput, Job, JobStatus, JobType
from tam.domain.services.estimate import Estimate
from tam.entrypoints.cli.session import ensure_project, fail, load_settings, opened, parse_id, run, wide_console
from tam.ports.storage import JobRepo

if TYPE_CHECKING:
    from tam.containers import Services

POLL_INTERVAL = 0.25  # the job row is read about four times a second
INTERRUPTED = 130


def step_names() -> str:
    return ", ".join(t.value for t in JobType)


def parse_step(text: str) -> JobType:
    """`findContacts` is the step's one name in every output; `find_contacts` and `find-contacts` work too."""
    try:
        return JobType.parse(text.strip().replace("-", "_"))
    except InvalidInput:
        fail(f"unknown step {text!r}; expected one of: {step_names()}")


def register(app: typer.Typer) -> None:
    @app.command("run")
    def run_step(
        step: str = typer.Argument(..., metavar="STEP", help=f"One of: {step_names()}."),
        project: str = typer.Option(..., "--project", help="Project id."),
        detach: bool = typer.Option(False, "--detach", help="Only dispatch to the workers and print the job id."),
        max_cost: float | None = typer.Option(
            None, "--max-cost", min=0, metavar="USD", help="Budget in US dollars; the job stops before passing it."
        ),
        estimate: bool = typer.Option(
            False, "--estimate", help="Print what the job would cost (items, calls, tokens, dollars) and run nothing."
        ),
        follow: bool = typer.Option(
            False, "--follow", help="If the step already has a pending or running job, follow that one."
        ),
    ) -> None:
        """Run one step of the pipeline as a job and follow its progress (Ctrl-C offers to cancel it)."""
        job_type = parse_step(step)
        project_id = parse_id(project)
        if estimate:
            print(format_estimate(run(lambda: _estimate(project_id, job_type))))
            return
        settings = load_settings()
        if detach and settings.redis_url is None:
            fail("--detach needs REDIS_URL and a running `tam worker`; without them the job runs in this process")
        embedded = settings.redis_url is None
        code = run(lambda: _run(project_id, job_type, detach, embedded=embedded, max_cost=max_cost, follow=follow))
        if code:
            raise typer.Exit(code)


async def _run(
    project_id: UUID,
    job_type: JobType,
    detach: bool,
    *,
    embedded: bool,
    max_cost: float | None = None,
    follow: bool = False,
) -> int:
    settings = load_settings()
    # embedded: smoother bars (the worker keeps its one write a second)
    runner = dataclasses.replace(settings.runner_settings(), flush_interval=POLL_INTERVAL) if embedded else None
    async with opened(settings, runner_settings=runner) as services:
        await ensure_project(services, project_id)
        jobs = services.jobs
        active = await active_job(jobs, project_id, job_type)
        if active is not None and not (follow or await _offer_to_follow(active)):
            fail(
                f"{job_type.value} already has job {active.id} {active.status.value} "
                f"({active.progress}%) in this project; follow it with `tam run {job_type.value} "
                f"--project {project_id} --follow` or cancel it with `tam jobs cancel {active.id}`"
            )
        if active is not None:
            job = active
            if embedded:  # nothing else runs it: pick it up here, where it stopped
                await _resume_here(services, job)
        else:
            try:
                job, _task_id = await services.dispatch_job.create(project_id, job_type, max_cost)
            except Conflict as exc:  # another `tam run` or the API started one just now
                fail(f"{exc}; follow it with `tam run {job_type.value} --project {project_id} --follow`")
        if detach:
            print(job.id)
            return 0
        async with _embedded_jobs(services, embedded):
            follower = JobFollower(services, embedded)
            return await follower.follow(job)


async def active_job(jobs: JobRepo, project_id: UUID, job_type: JobType) -> Job | None:
    """The step's pending or running job in the project, the newest if several."""
    found = [j for j in await jobs.list(project_id) if j.job_type is job_type and not j.status.finished]
    return max(found, key=lambda j: j.created_at or datetime.min.replace(tzinfo=UTC), default=None)


async def _offer_to_follow(job: Job) -> bool:
    if not sys.stdin.isatty():
        return False
    question = f"{job.job_type.value} already has job {job.id} {job.status.value}. Follow it?"
    try:
        return bool(await asyncio.to_thread(typer.confirm, question, default=True))
    except (typer.Abort, EOFError):
        return False


async def _resume_here(services: Services, job: Job) -> None:
    """Embedded mode: a job without a task is dispatched; one whose process has gone (no heartbeat for
    TAM_WORKER_HEARTBEAT_TIMEOUT s) is dispatched again and resumes; one another `tam run` is running
    is only followed."""
    if job.task_id is None:
        await services.dispatch_job.dispatch(job)
        return
    beat = job.heartbeat_at or job.updated_at or job.created_at
    stale_after = services.settings.tam_worker_heartbeat_timeout
    if beat is None or (services.clock.now() - beat).total_seconds() >= stale_after:
        await services.dispatcher.dispatch(job)


async def _estimate(project_id: UUID, job_type: JobType) -> Estimate:
    async with opened() as services:
        await ensure_project(services, project_id)
        return await services.estimate_job(project_id, job_type)


def format_estimate(e: Estimate) -> str:
    lines = [f"items          {e.items:,}", f"calls          {e.calls:,}"]
    if e.input_tokens or e.output_tokens:
        lines += [f"input tokens   {e.input_tokens:,}", f"output tokens  {e.output_tokens:,}"]
    if e.credits:
        lines.append(f"credits        {e.credits:,}")
    lines += [f"cost           ${e.cost_usd:,.4f}", f"mode           {e.mode}"]
    return "\n".join(lines)


@contextlib.asynccontextmanager
async def _embedded_jobs(services: Services, embedded: bool) -> AsyncIterator[None]:
    """Without Redis the job runs as a task of this loop: let it finish before the store closes."""
    try:
        yield
    finally:
        if embedded:
            await services.dispatcher.join()


class JobFollower:
    def __init__(self, services: Services, embedded: bool) -> None:
        self._services = services
        self._jobs = services.jobs
        self._embedded = embedded
        self._console = wide_console()
        self._interrupted = asyncio.Event()

    async def follow(self, job: Job) -> int:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGINT, self._interrupted.set)
        try:
            return await self._follow(job)
        finally:
            loop.remove_signal_handler(signal.SIGINT)

    async def _follow(self, job: Job) -> int:
        bars = Progress(
            TextColumn("{task.description:<16}"),
            BarColumn(bar_width=30),
            MofNCompleteColumn(),
            TextColumn("{task.percentage:>3.0f}%"),
            TimeElapsedColumn(),
            TextColumn("[dim]{task.fields[message]}"),
            console=self._console,
        )
        with bars:
            bar = bars.add_task(job.job_type.value, total=None, message="queued")
            while True:
                job = await self._jobs.get(job.id)
                if job.items_total:
                    bars.update(bar, total=job.items_total, completed=job.items_done + job.items_failed)
                bars.update(bar, message=job.error or job.message or job.status.value)
                if job.status.finished:
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._interrupted.wait(), POLL_INTERVAL)
                if self._interrupted.is_set():
                    self._interrupted.clear()
                    bars.stop()
                    if await self._confirm_cancel(job):
                        return await self._cancel(job)
                    if not self._embedded:
                        print(f"tam: job {job.id} keeps running in the worker (see `tam jobs`)", file=sys.stderr)
                        return 0
                    bars.start()
        return self._report(job)

    async def _confirm_cancel(self, job: Job) -> bool:
        if not sys.stdin.isatty():
            return True
        question = f"Cancel job {job.id} ({job.job_type.value})?"
        try:
            return await asyncio.to_thread(typer.confirm, question, default=False)
        except (typer.Abort, EOFError):
            return True

    async def _cancel(self, job: Job) -> int:
        job = await self._jobs.cancel(job.id, self._services.clock.now())
        if job.status is JobStatus.CANCELLED:
            done = f"{job.items_done} of {job.items_total} items were done" if job.items_total else "nothing was done"
            print(f"tam: job {job.id} cancelled ({done}; finished items stay)", file=sys.stderr)
            return INTERRUPTED
        return self._report(job)

    def _report(self, job: Job) -> int:
        if job.status is JobStatus.COMPLETED:
            # wrapped at the terminal's width, like the bars above it
            self._console.print(
                f"job {job.id} completed: {job.message or ''}".rstrip(": "), markup=False, highlight=False
            )
            return 0
        if job.status is JobStatus.CANCELLED:
            print(f"tam: job {job.id} was cancelled", file=sys.stderr)
            return 1
        print(f"tam: job {job.id} failed: {job.error or 'no error recorded'}", file=sys.stderr)
        return 1
