"""The fault suite: real faults under a qualify job of 200 companies on PostgreSQL + Redis, two `tam
worker` processes, and the fake Claude at a realistic latency. Each case asserts the same outcome: the
job completes; every company holds the fake's verdict; Claude was called at most companies +
concurrency times (counted at the fake); progress never went back; the closing message matches the
tables. Recovery times are reported (docs/deploy.md quotes them).

Faults: the database unavailable for 15 s (a non-superuser role with CONNECTION LIMIT 0 and its
backends terminated: the shared server keeps running), Redis stopped for 20 s (a private redis-server),
SIGKILL of the worker child running the job, SIGSTOP of it past the heartbeat timeout then SIGCONT,
two job rows of one type dispatched together, dispatch while Redis is down and again after, a dispatched
job whose message was lost, and the database unavailable for 15 s during findContacts (each company's
contacts are written by the item itself: nobody is searched or looked up twice)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import re
import signal
import socket
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit
from uuid import UUID

import asyncpg
import pytest
from starlette.testclient import TestClient

from tam.entrypoints.api import create_app
from tam.settings import Settings
from tam_fakes import FakeServer
from tam_fakes.anthropic import asked_domain, expected_qualified
from tests.conftest import xdist_index
from tests.e2e.conftest import AUTH, KEY, TIMED, VENDOR_KEY, JobRow, Pg, Worker, live_env, new_project, report, wait_for

pytestmark = [pytest.mark.slow, TIMED]

COMPANIES = 200
CONCURRENCY = 10
LATENCY = 0.2  # seconds per Claude call at the fake
HEARTBEAT_TIMEOUT = 5  # short, so the cases that wait it out stay short


def _free_port(worker_id: str) -> int:
    """The first free port of 56310-56399, counted from a pytest-xdist worker's own tenth of the range, so
    that parallel workers do not pick the same one at once."""
    start = 10 * xdist_index(worker_id)
    ports = range(56310, 56400)
    for port in [*ports[start:], *ports[:start]]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 56310-56399")


class PrivateRedis:
    """A redis-server of our own (append-only file, so a restart keeps the queues), stopped by PID."""

    def __init__(self, directory: Path, worker_id: str) -> None:
        self.port = _free_port(worker_id)
        self.dir = directory
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "yes",
             "--appendfsync", "always", "--dir", str(self.dir)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )  # fmt: skip

        def up() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.port)) == 0

        wait_for(up, 10, what="private redis up")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)


class DatabaseSwitch:
    """A login role the workers and the API connect as; `off()` makes the database unavailable to it
    (CONNECTION LIMIT 0 and its sessions terminated), `on()` lets it back."""

    def __init__(self, admin_url: str) -> None:
        self.role = f"tam_fault_{uuid.uuid4().hex[:8]}"
        self._admin_url = admin_url
        parts = urlsplit(admin_url)
        self.url = urlunsplit(parts._replace(netloc=f"{self.role}@{parts.hostname}:{parts.port or 5432}"))
        database = parts.path.lstrip("/")
        self._sql(
            f'create role "{self.role}" login bypassrls',  # RLS is on for the browser roles, not tam
            f'grant connect on database "{database}" to "{self.role}"',
            f'grant usage on schema public to "{self.role}"',
            f'grant all on all tables in schema public to "{self.role}"',
            f'grant execute on all functions in schema public to "{self.role}"',
        )

    def _sql(self, *statements: str) -> None:
        async def run() -> None:
            conn = await asyncpg.connect(self._admin_url)
            try:
                for statement in statements:
                    await conn.execute(statement)
            finally:
                await conn.close()

        with ThreadPoolExecutor(1) as pool:
            pool.submit(asyncio.run, run()).result()

    def off(self) -> None:
        self._sql(
            f'alter role "{self.role}" connection limit 0',
            f"select pg_terminate_backend(pid) from pg_stat_activity where usename = '{self.role}'",
        )

    def on(self) -> None:
        self._sql(f'alter role "{self.role}" connection limit -1')

    def drop(self) -> None:
        self.on()
        self._sql(
            f"select pg_terminate_backend(pid) from pg_stat_activity where usename = '{self.role}'",
            f'drop owned by "{self.role}"',
            f'drop role "{self.role}"',
        )


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


@dataclass
class Rig:
    env: dict[str, str]
    api: TestClient
    pg: Pg
    redis: PrivateRedis
    db: DatabaseSwitch
    claude: FakeServer
    prospeo: FakeServer
    workers: list[Worker]
    admin_url: str

    def worker_children(self) -> list[int]:
        """The processes that run actors: supervisor -> dramatiq master -> child."""
        return [c for w in self.workers for m in _children(w.proc.pid) for c in _children(m)]

    def holder(self, job_id: str) -> int:
        """The worker child running the job's current attempt: its `tam worker` logged the attempt."""
        attempt = self.pg.job(job_id).attempts
        marks = (f'"attempt": {attempt},', f'"job_id": "{job_id}"')

        def logged(worker: Worker) -> bool:
            return any(all(m in line for m in marks) for line in worker.log.read_text().splitlines())

        owners = wait_for(lambda: [w for w in self.workers if logged(w)], 20, what="the job's worker")
        assert len(owners) == 1, [w.log for w in owners]
        (child,) = [c for m in _children(owners[0].proc.pid) for c in _children(m)]
        return child

    def run(self, body: dict[str, str]) -> Any:
        return self.api.post("/api/tam/run", headers=AUTH, json=body)


@pytest.fixture(scope="module")
def rig(migrated_database_url: str, tmp_path_factory: pytest.TempPathFactory, worker_id: str) -> Iterator[Rig]:
    base = tmp_path_factory.mktemp("faults")
    redis = PrivateRedis(base, worker_id)
    redis.start()
    db = DatabaseSwitch(migrated_database_url)
    claude = FakeServer("anthropic", api_key=VENDOR_KEY, latency=LATENCY).start()
    prospeo = FakeServer("prospeo", api_key=VENDOR_KEY, latency=LATENCY).start()
    pg = Pg(migrated_database_url)  # superuser: sees the tables while the role is shut out
    env = {
        **live_env({"anthropic": claude, "prospeo": prospeo, "brightdata": claude, "discolike": claude}),
        "REDIS_URL": redis.url,
        "TAM_STORE": "postgres",
        "DATABASE_URL": db.url,
        "SERVICE_API_KEY": KEY,
        "TAM_WORKER_HEARTBEAT_TIMEOUT": str(HEARTBEAT_TIMEOUT),
        "TAM_QUALIFY_CONCURRENCY": str(CONCURRENCY),
        "TAM_OUTAGE_TOLERANCE": "120",
    }
    workers = [Worker(env, base / f"worker{i}.log", threads=2) for i in range(2)]
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with TestClient(create_app(Settings(_env_file=None))) as api:
            for worker in workers:
                worker.wait_ready()
            yield Rig(env, api, pg, redis, db, claude, prospeo, workers, migrated_database_url)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        for worker in workers:
            worker.stop()
        claude.stop()
        prospeo.stop()
        redis.stop()
        pg.close()
        db.drop()


class Sampler:
    """Samples the job row every 50 ms on its own connection (superuser: it keeps reading through a
    database outage of the workers' role)."""

    def __init__(self, url: str, job_id: str) -> None:
        self.samples: list[JobRow] = []
        self._url, self._job_id = url, job_id
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        pg = Pg(self._url)
        try:
            while not self._stop.is_set():
                self.samples.append(pg.job(self._job_id))
                time.sleep(0.05)
        finally:
            pg.close()

    def stop(self) -> list[JobRow]:
        self._stop.set()
        self._thread.join(10)
        return self.samples


def seed(rig: Rig, tag: str) -> tuple[str, list[str]]:
    domains = [f"{tag}{i}.example" for i in range(COMPANIES)]
    return new_project(rig.api, domains), domains


def frontend_job(rig: Rig, project_id: str) -> str:
    """A job row as the frontend inserts it (running already), not yet dispatched."""
    return str(
        rig.pg.fetchval(
            "insert into tam_job_queue (project_id, job_type, status) values ($1, 'qualify', 'running') returning id",
            UUID(project_id),
        )
    )


def start_job(rig: Rig, project_id: str) -> str:
    job_id = frontend_job(rig, project_id)
    response = rig.run({"jobId": job_id, "jobType": "qualify", "projectId": project_id})
    assert response.status_code == 200, response.text
    return job_id


def wait_progress(rig: Rig, job_id: str, done: int) -> JobRow:
    return wait_for(lambda: (row := rig.pg.job(job_id)).items_done >= done and row, 60, what=f"{done} items done")


def finished(rig: Rig, job_id: str, timeout: float = 120) -> JobRow:
    return wait_for(lambda: (row := rig.pg.job(job_id)).status != "running" and row, timeout, what="job finished")


@dataclass
class Running:
    """A qualify job started through the API and sampled, with its Claude calls logged."""

    project_id: str
    domains: list[str]
    calls: CallLog
    job_id: str
    sampler: Sampler


def running(rig: Rig, tag: str, done: int = 40) -> Running:
    """Seeds a project, starts its qualify job and waits until `done` companies are done."""
    project_id, domains = seed(rig, tag)
    calls = CallLog(rig)
    job_id = start_job(rig, project_id)
    sampler = Sampler(rig.admin_url, job_id)
    wait_progress(rig, job_id, done)
    return Running(project_id, domains, calls, job_id, sampler)


def next_attempt(rig: Rig, job_id: str, after: JobRow, what: str) -> JobRow:
    return wait_for(lambda: (row := rig.pg.job(job_id)).attempts > after.attempts and row, 60, what=what)


def assert_outcome(
    rig: Rig,
    project_id: str,
    domains: list[str],
    job: JobRow,
    samples: list[JobRow],
    calls: CallLog,
    since: float,
    extra_allowed: int = CONCURRENCY,
) -> None:
    calls.stop()
    asked = calls.calls()
    case = os.environ.get("PYTEST_CURRENT_TEST", "").split("::")[-1].split(" ")[0]
    report(f"{case}: {asked} Claude calls for {len(domains)} companies; {calls.asked_twice(since)}")
    assert job.status == "completed", job
    assert job.progress == 100 and job.items_done + job.items_failed == len(domains), job
    stored = rig.pg.companies(project_id)
    wrong = [
        d
        for d in domains
        if stored[d]["qualification_status"] != ("qualified" if expected_qualified(d) else "disqualified")
    ]
    assert not wrong, f"{len(wrong)} companies without the fake's verdict, e.g. {wrong[:3]}"
    assert asked <= len(domains) + extra_allowed, (
        f"{asked} Claude calls for {len(domains)} companies; {calls.asked_twice(since)}"
    )
    for before, after in itertools.pairwise(samples):
        assert after.progress >= before.progress, (before, after)
    qualified = sum(1 for d in domains if expected_qualified(d))
    assert job.message is not None
    numbers = [int(n) for n in re.findall(r"\d+", job.message)]
    assert numbers[:4] == [len(domains), len(domains), qualified, len(domains) - qualified], job.message


def claude_calls(rig: Rig) -> int:
    """Messages requests the fake has served so far (a case takes the difference)."""
    return len(rig.claude.state.requests)


def _socket_ports(pid: int) -> set[int]:
    """The local TCP ports of a process's open sockets (its fds' inodes looked up in /proc/net/tcp)."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes.add(target[8:-1])
    ports = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
            fields = line.split()
            if fields[9] in inodes:
                ports.add(int(fields[1].split(":")[1], 16))
    return ports


class CallLog:
    """Which worker process made each Claude call, for a case's diagnosis: every 100 ms it maps the
    worker children's local TCP ports to their PIDs, and the fake records each request's client port."""

    def __init__(self, rig: Rig) -> None:
        self._rig = rig
        self.first = claude_calls(rig)
        self.began = time.monotonic()
        self.owner: dict[int, int] = {}  # local port -> worker child PID
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            for child in self._rig.worker_children():
                for port in _socket_ports(child):
                    self.owner[port] = child
            time.sleep(0.1)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def calls(self) -> int:
        return claude_calls(self._rig) - self.first

    def asked_twice(self, since: float) -> str:
        """Each company asked more than once: when (s after `since`) and by which process."""
        asked: dict[str, list[str]] = {}
        for request in self._rig.claude.state.requests[self.first :]:
            domain = asked_domain(request.body)
            if domain is None:
                continue
            port = int(request.peer.rsplit(":", 1)[1]) if request.peer else 0
            asked.setdefault(domain, []).append(f"{request.at - since:+.1f}s pid {self.owner.get(port, '?')}")
        twice = {domain: calls for domain, calls in asked.items() if len(calls) > 1}
        requests = self._rig.claude.state.requests[self.first :]
        others = Counter(f"{r.method} {r.path}" for r in requests if asked_domain(r.body) is None)
        text = f"{len(twice)} companies asked twice: " + "; ".join(f"{d}: {c}" for d, c in sorted(twice.items()))
        return text + (f"; other requests: {dict(others)}" if others else "")


def test_database_unavailable_for_15_s(rig: Rig) -> None:
    run = running(rig, "dbout")
    job_id = run.job_id
    rig.db.off()
    off_at = time.monotonic()
    time.sleep(15)
    rig.db.on()
    on_at = time.monotonic()
    before = rig.pg.job(job_id).items_done
    moving = wait_for(lambda: (row := rig.pg.job(job_id)).items_done > before and row, 60, what="progress again")
    job = finished(rig, job_id)
    samples = run.sampler.stop()
    report(
        f"database away 15 s: progress again {moving.t - on_at:.1f} s after it returned; job completed "
        f"{job.t - on_at:.1f} s after ({job.t - off_at:.0f} s after the outage began), attempts {job.attempts}"
    )
    assert_outcome(rig, run.project_id, run.domains, job, samples, run.calls, off_at)


def test_redis_stopped_for_20_s(rig: Rig) -> None:
    run = running(rig, "redisout")
    job_id = run.job_id
    rig.redis.stop()
    off_at = time.monotonic()
    time.sleep(20)
    rig.redis.start()
    on_at = time.monotonic()
    job = finished(rig, job_id)
    samples = run.sampler.stop()
    report(
        f"Redis stopped 20 s: job completed {job.t - on_at:.1f} s after Redis returned "
        f"({job.t - off_at:.0f} s after it stopped), attempts {job.attempts}"
    )
    assert_outcome(rig, run.project_id, run.domains, job, samples, run.calls, off_at)


def test_sigkill_of_the_worker_child_running_the_job(rig: Rig) -> None:
    run = running(rig, "childkill")
    job_id = run.job_id
    victim = rig.holder(job_id)
    os.kill(victim, signal.SIGKILL)
    killed_at = time.monotonic()
    at_kill = rig.pg.job(job_id)
    moving = next_attempt(rig, job_id, at_kill, "a new attempt")
    job = finished(rig, job_id)
    samples = run.sampler.stop()
    # the supervisor replaced the child: both workers have one again
    wait_for(lambda: len(rig.worker_children()) == 2, 30, what="the killed child replaced")
    report(
        f"SIGKILL of the worker child: new attempt {moving.t - killed_at:.1f} s later, job completed "
        f"{job.t - killed_at:.1f} s after the kill (heartbeat timeout {HEARTBEAT_TIMEOUT} s)"
    )
    assert_outcome(rig, run.project_id, run.domains, job, samples, run.calls, killed_at)


def test_sigstop_past_the_heartbeat_timeout_then_sigcont(rig: Rig) -> None:
    run = running(rig, "paused")
    job_id = run.job_id
    victim = rig.holder(job_id)
    os.kill(victim, signal.SIGSTOP)
    stopped_at = time.monotonic()
    at_stop = rig.pg.job(job_id)
    try:
        taken = next_attempt(rig, job_id, at_stop, "a successor")
        progressed = wait_progress(rig, job_id, taken.items_done + 20)
    finally:
        os.kill(victim, signal.SIGCONT)
    job = finished(rig, job_id)
    samples = run.sampler.stop()
    report(
        f"SIGSTOP past the heartbeat timeout: successor attempt {taken.t - stopped_at:.1f} s after the stop, "
        f"job completed {job.t - stopped_at:.1f} s after it; the resumed holder stood down"
    )
    assert progressed.attempts == taken.attempts
    assert job.attempts == taken.attempts, "the paused worker took the job back"
    logs = "".join(w.log.read_text() for w in rig.workers)
    assert f"attempt {at_stop.attempts} was superseded by attempt {taken.attempts}" in logs
    # The paused holder's calls in flight were answered (and paid) while it slept; the successor asks
    # about those companies again (at most the window). Once resumed, the holder checks its lease
    # before any new call, and stands down.
    assert_outcome(rig, run.project_id, run.domains, job, samples, run.calls, stopped_at)


def test_two_jobs_of_one_type_dispatched_together(rig: Rig) -> None:
    project_id, domains = seed(rig, "double")
    calls = CallLog(rig)
    rows = [frontend_job(rig, project_id) for _ in range(2)]
    with ThreadPoolExecutor(2) as pool:
        answers = list(
            pool.map(lambda job_id: rig.run({"jobId": job_id, "jobType": "qualify", "projectId": project_id}), rows)
        )
    codes = sorted(a.status_code for a in answers)
    assert codes == [200, 409], [a.text for a in answers]
    winner = rows[[a.status_code for a in answers].index(200)]
    loser = rows[[a.status_code for a in answers].index(409)]
    assert answers[rows.index(loser)].json()["jobId"] == winner
    sampler = Sampler(rig.admin_url, winner)
    job = finished(rig, winner)
    samples = sampler.stop()
    cancelled = rig.pg.job(loser)
    assert cancelled.status == "cancelled" and winner in (cancelled.message or "")
    assert_outcome(rig, project_id, domains, job, samples, calls, calls.began)


def test_dispatch_while_redis_is_down_then_after(rig: Rig) -> None:
    project_id, domains = seed(rig, "nobroker")
    calls = CallLog(rig)
    job_id = frontend_job(rig, project_id)
    body = {"jobId": job_id, "jobType": "qualify", "projectId": project_id}
    rig.redis.stop()
    try:
        during = rig.run(body)
        row = rig.pg.job(job_id)
        assert during.status_code == 503 and "REDIS_URL" in during.json()["error"], during.text
        assert (row.status, row.attempts, row.error) == ("running", 0, None)
        assert rig.pg.fetchval("select task_id from tam_job_queue where id = $1", UUID(job_id)) is None
    finally:
        rig.redis.start()
    after = wait_for(lambda: (r := rig.run(body)).status_code == 200 and r, 30, what="dispatch accepted")
    assert after.json()["triggered"] is True
    sampler = Sampler(rig.admin_url, job_id)
    job = finished(rig, job_id)
    samples = sampler.stop()
    assert_outcome(rig, project_id, domains, job, samples, calls, calls.began)


def test_a_dispatched_job_whose_message_was_lost(rig: Rig) -> None:
    """A job dispatched (it has a task id) whose message never reached a worker: the sweep of a live
    worker notices that Redis holds no message for it and sends one again, under the same task id."""
    project_id, domains = seed(rig, "lostmsg")
    calls = CallLog(rig)
    task_id = uuid.uuid4().hex
    job_id = str(
        rig.pg.fetchval(
            "insert into tam_job_queue (project_id, job_type, status, task_id) values ($1, 'qualify', 'pending', $2)"
            " returning id",
            UUID(project_id),
            task_id,
        )
    )
    dispatched_at = time.monotonic()
    sampler = Sampler(rig.admin_url, job_id)
    started = wait_for(lambda: (row := rig.pg.job(job_id)).attempts > 0 and row, 60, what="the job started")
    job = finished(rig, job_id)
    samples = sampler.stop()
    report(
        f"a dispatched job whose message was lost: started {started.t - dispatched_at:.1f} s after its dispatch "
        f"(heartbeat timeout {HEARTBEAT_TIMEOUT} s), completed {job.t - dispatched_at:.1f} s after it"
    )
    assert job.attempts == 1
    assert rig.pg.fetchval("select task_id from tam_job_queue where id = $1", UUID(job_id)) == task_id
    assert_outcome(rig, project_id, domains, job, samples, calls, dispatched_at)


def test_database_unavailable_for_15_s_during_find_contacts(rig: Rig) -> None:
    """findContacts writes each company's contacts itself: a write that fails in the outage is retried
    with the search results and emails held, so nothing is searched or enriched twice."""
    rig.prospeo.state.rate_limit = 6000  # per minute (the fake's default, 180, would make this case minutes long)
    project_id, domains = seed(rig, "contactsdb")
    rig.pg.fetchval(
        "update tam_companies set qualification_status = 'qualified' where project_id = $1", UUID(project_id)
    )
    first = len(rig.prospeo.state.requests)
    job_id = str(
        rig.pg.fetchval(
            "insert into tam_job_queue (project_id, job_type, status) values ($1, 'findContacts', 'running')"
            " returning id",
            UUID(project_id),
        )
    )
    response = rig.run({"jobId": job_id, "jobType": "findContacts", "projectId": project_id})
    assert response.status_code == 200, response.text
    sampler = Sampler(rig.admin_url, job_id)
    wait_progress(rig, job_id, 40)
    rig.db.off()
    off_at = time.monotonic()
    time.sleep(15)
    rig.db.on()
    on_at = time.monotonic()
    job = finished(rig, job_id)
    samples = sampler.stop()
    requests = rig.prospeo.state.requests[first:]
    pattern = re.compile(r"contactsdb\d+\.example")
    found = (pattern.search(str(r.body)) for r in requests if r.path == "/search-person")
    searched = Counter(m.group(0) for m in found if m)
    enriched = Counter(str(r.body) for r in requests if r.path == "/enrich-person")
    report(
        f"database away 15 s during findContacts: job completed {job.t - on_at:.1f} s after it returned "
        f"({job.t - off_at:.0f} s after it went), attempts {job.attempts}; {sum(searched.values())} searches for "
        f"{len(domains)} companies, {sum(enriched.values())} email lookups for {len(enriched)} people"
    )
    assert job.status == "completed", job
    assert job.items_done + job.items_failed == len(domains), job
    unsearched = rig.pg.fetchval(
        "select count(*) from tam_companies where project_id = $1 and contacts_searched_at is null", UUID(project_id)
    )
    assert unsearched == 0
    assert set(searched) == set(domains)
    assert sorted(d for d, n in searched.items() if n > 1) == [], "companies searched twice"
    assert sorted(p for p, n in enriched.items() if n > 1) == [], "people looked up twice"
    for before, after in itertools.pairwise(samples):
        assert after.progress >= before.progress and after.items_done >= before.items_done, (before, after)
