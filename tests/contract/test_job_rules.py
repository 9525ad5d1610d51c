"""One state machine over JobRepo, run against memory, SQLite and PostgreSQL: every operation (start,
progress, finish, cancel, dispatch, release, requeue, lease expiry) must leave the stored row exactly as the
rules on the `Job` entity say. The entity is the reference; the stores (and the SQL functions behind the
PostgreSQL and Supabase stores) only persist what it decides."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Coroutine, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID, uuid4

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test

from tam.adapters.memory import MemoryDatabase, MemoryJobRepo
from tam.adapters.postgres import PostgresJobRepo, PostgresProjectRepo, open_pool
from tam.adapters.sqlite import SqliteJobRepo, SqliteMigrator, SqliteProjectRepo, sqlite_database
from tam.domain.model import Job, JobStatus, JobType, Progress, Project, Usage
from tam.ports.storage import JobRepo, ProjectRepo

T = TypeVar("T")
FIELDS = (
    "status",
    "progress",
    "items_total",
    "items_done",
    "items_failed",
    "message",
    "error",
    "task_id",
    "attempts",
    "usage",
    "started_at",
    "finished_at",
    "heartbeat_at",
)
_tasks = itertools.count()


class Backend:
    """A store on a private event loop, so Hypothesis can drive it from plain methods."""

    def __init__(self, kind: str, tmp: Path, database_url: str | None) -> None:
        self.loop = asyncio.new_event_loop()
        self._stack = contextlib.AsyncExitStack()
        self.jobs, self.projects = self.run(self._open(kind, tmp, database_url))

    async def _open(self, kind: str, tmp: Path, url: str | None) -> tuple[JobRepo, ProjectRepo | None]:
        if kind == "memory":
            return MemoryJobRepo(MemoryDatabase()), None
        if kind == "sqlite":
            await SqliteMigrator(tmp / "rules.db").run()
            db = await self._stack.enter_async_context(sqlite_database(tmp / "rules.db"))
            return SqliteJobRepo(db), SqliteProjectRepo(db)
        assert url is not None
        pool = await open_pool(url, max_size=2)
        self._stack.push_async_callback(pool.close)
        return PostgresJobRepo(pool), PostgresProjectRepo(pool)

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        return self.loop.run_until_complete(coroutine)

    def close(self) -> None:
        self.run(self._stack.aclose())
        self.loop.close()


def machine_for(backend: Backend) -> type[RuleBasedStateMachine]:
    class JobRules(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.t0 = datetime.now(UTC)
            self.tick = 0
            project = Project(name="rules", icp="icp")
            if backend.projects is not None:
                backend.run(backend.projects.add(project))
            self.model = backend.run(backend.jobs.add(Job(project_id=project.id, job_type=JobType.QUALIFY)))
            self.sibling: Job | None = None

        # Times move forward a second per step; "stale" is judged against a point far ahead of every
        # timestamp (the lease expired) or far behind them (a live lease), never in between.
        def at(self) -> datetime:
            self.tick += 1
            return self.t0 + timedelta(seconds=self.tick)

        def stale_before(self, expired: bool) -> datetime:
            return self.t0 + (timedelta(days=1) if expired else -timedelta(hours=1))

        def token(self, which: str) -> int | None:
            return {"current": self.model.attempts, "stale": self.model.attempts - 1, "none": None}[which]

        def task(self, which: str) -> str | None:
            return {"current": self.model.task_id, "other": f"other-{next(_tasks)}", "none": None}[which]

        def call(self, make: Callable[[JobRepo], Coroutine[Any, Any, T]]) -> T:
            return backend.run(make(backend.jobs))

        @rule(task=st.sampled_from(["current", "other", "none"]), expired=st.booleans())
        def start(self, task: str, expired: bool) -> None:
            at, task_id, before = self.at(), self.task(task), self.stale_before(expired)
            expected = self.model.start(at, task_id, before)
            got = self.call(lambda jobs: jobs.start(self.model.id, at, task_id=task_id, stale_before=before))
            assert (got is None) == (expected is None), (got, expected)
            self.model = expected or self.model

        @rule(
            token=st.sampled_from(["current", "stale", "none"]),
            done=st.integers(0, 10),
            failed=st.integers(0, 2),
        )
        def progress(self, token: str, done: int, failed: int) -> None:
            at, tok = self.at(), self.token(token)
            progress = Progress(12, done, failed, f"{done} of 12")
            usage = Usage.of(tokens=done)
            self.model = self.model.progressed(tok, progress, usage, at)
            got = self.call(lambda jobs: jobs.save_progress(self.model.id, progress, usage, at, token=tok))
            self.same(got)

        @rule(
            status=st.sampled_from([JobStatus.COMPLETED, JobStatus.FAILED]),
            token=st.sampled_from(["current", "stale", "none"]),
        )
        def finish(self, status: JobStatus, token: str) -> None:
            at, tok = self.at(), self.token(token)
            error = "broke" if status is JobStatus.FAILED else None
            self.model = self.model.finished_as(status, "closing", error, at, tok)
            got = self.call(lambda jobs: jobs.finish(self.model.id, status, "closing", error, at, token=tok))
            self.same(got)

        @rule()
        def cancel(self) -> None:
            at = self.at()
            self.model = self.model.finished_as(JobStatus.CANCELLED, None, None, at)
            self.same(self.call(lambda jobs: jobs.cancel(self.model.id, at)))

        @rule(token=st.sampled_from(["current", "stale"]))
        def release(self, token: str) -> None:
            at, tok = self.at(), self.token(token)
            assert tok is not None
            self.model = self.model.released(tok, at)
            self.call(lambda jobs: jobs.release(self.model.id, tok, at))

        @rule(old=st.sampled_from(["current", "other"]), expired=st.booleans())
        def requeue(self, old: str, expired: bool) -> None:
            at, old_task, new_task = self.at(), self.task(old), f"new-{next(_tasks)}"
            before = self.stale_before(expired)
            expected = self.model.requeued(old_task, new_task, before, at)
            got = self.call(lambda jobs: jobs.requeue(self.model.id, old_task, new_task, before))
            assert got == (expected is not None)
            self.model = expected or self.model

        @rule(expired=st.booleans())
        def dispatch(self, expired: bool) -> None:
            """`POST /api/tam/run` (claim_dispatch): one store call keeps, requeues or claims the task,
            or cancels the job while a sibling of its type is active and dispatched."""
            self.dispatch_as(self.model.project_id, self.model.job_type, expired)

        @rule(project=st.sampled_from(["same", "other"]), expired=st.booleans())
        def dispatch_mismatched(self, project: str, expired: bool) -> None:
            """The request names another project, or the job's project with another type: refused."""
            if project == "same":
                self.dispatch_as(self.model.project_id, JobType.FIND_CONTACTS, expired)
            else:
                self.dispatch_as(uuid4(), self.model.job_type, expired)

        def dispatch_as(self, project_id: UUID, job_type: JobType, expired: bool) -> None:
            at, task_id, before = self.at(), f"claim-{next(_tasks)}", self.stale_before(expired)
            active = self.sibling if self.sibling is not None and self.sibling.active else None
            expected = self.model.dispatched(project_id, job_type, task_id, at, before, active)
            got = self.call(lambda jobs: jobs.claim_dispatch(self.model.id, project_id, job_type, task_id, at, before))
            assert (got.outcome, got.previous_task_id) == (expected.outcome, expected.previous_task_id)
            assert (got.active and got.active.id) == (expected.active and expected.active.id)
            self.model = expected.job
            self.same(got.job)

        @rule()
        def sibling_dispatched(self) -> None:
            """Another qualify job of the project, dispatched and running (what the one-active-job rule
            refuses a second dispatch for)."""
            if self.sibling is None:
                sibling = Job(
                    project_id=self.model.project_id,
                    job_type=JobType.QUALIFY,
                    status=JobStatus.RUNNING,
                    task_id=f"sibling-{next(_tasks)}",
                    created_at=self.t0 - timedelta(minutes=1),
                )
                self.sibling = self.call(lambda jobs: jobs.add(sibling))

        @rule()
        def sibling_finished(self) -> None:
            if self.sibling is not None:
                sibling, at = self.sibling, self.at()
                self.sibling = self.call(lambda jobs: jobs.cancel(sibling.id, at))

        @rule(task=st.sampled_from(["current", "other"]))
        def unclaim(self, task: str) -> None:
            task_id = self.task(task)
            if task_id is None:
                return
            self.model = self.model.unclaimed(task_id)
            self.call(lambda jobs: jobs.unclaim_task(self.model.id, task_id))

        def same(self, got: Job) -> None:
            want = {f: getattr(self.model, f) for f in FIELDS}
            have = {f: getattr(got, f) for f in FIELDS}
            assert have == want

        @invariant()
        def stored_row_is_what_the_entity_decided(self) -> None:
            self.same(self.call(lambda jobs: jobs.get(self.model.id)))
            assert 0 <= self.model.progress <= 100

    return JobRules


@pytest.fixture(params=["memory", "sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    url = request.getfixturevalue("migrated_database_url") if request.param == "postgres" else None
    store = Backend(request.param, tmp_path, url)
    yield store
    store.close()


def test_every_store_follows_the_job_rules(backend: Backend) -> None:
    run_state_machine_as_test(
        machine_for(backend),
        settings=settings(
            max_examples=50,
            stateful_step_count=20,
            deadline=None,
            suppress_health_check=[HealthCheck.too_slow],
        ),
    )
