"""The security migration where the shared test server cannot show it: on a private PostgreSQL cluster
(started here, stopped by PID), first as plain PostgreSQL without Supabase's roles, then shaped like a
Supabase project whose migrating role is, as `postgres` is there, the owner but not a superuser.

Roles belong to a cluster, and the shared server has Supabase's roles once any test created them: only a
cluster of our own shows the "roles missing" case. The two tests share the cluster and run in file order
(the second creates the roles)."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest

from tam.adapters.postgres import PostgresCompanyRepo, PostgresJobRepo, PostgresMigrator, PostgresProjectRepo, open_pool
from tam.adapters.postgres.connection import connect
from tam.domain.model import ClaimOutcome, Job, JobStatus, JobType, NewCompany, Project
from tests.contract.test_security_roles import READ_TABLES, TAM_ROUTINES, TAM_TABLES, exposures
from tests.support.postgres import SUPABASE_DEFAULT_PRIVILEGES, SUPABASE_ROLES, as_role, database_url, run_sync

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _accepts_sessions(url: str) -> bool:
    try:
        conn = await asyncpg.connect(url, timeout=5)
    except (TimeoutError, OSError, asyncpg.PostgresError):
        return False
    await conn.close()
    return True


@pytest.fixture(scope="module")
def private_server() -> Iterator[str]:
    """A throwaway PostgreSQL cluster on 127.0.0.1 (trust auth, fsync off); its superuser's URL."""
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parts[-3]))
    assert versions, "PostgreSQL's server binaries (Debian package postgresql) are needed for this test"
    bin_dir = versions[-1].parent
    root = Path(tempfile.mkdtemp(prefix="tam-pg-"))
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(root, "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    data, port = root / "data", _free_port()
    subprocess.run(
        [*as_postgres, str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust"],
        check=True,
        capture_output=True,
        timeout=120,
    )
    log = (root / "server.log").open("wb")
    fast = ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    server = subprocess.Popen(
        [
            *as_postgres,
            str(bin_dir / "postgres"),
            "-D",
            str(data),
            "-h",
            "127.0.0.1",
            "-p",
            str(port),
            "-k",
            str(root),
            *fast,
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    try:
        deadline = time.monotonic() + 120
        while not run_sync(_accepts_sessions(url)):  # a listening socket is not enough: "starting up"
            assert server.poll() is None, (root / "server.log").read_text()
            assert time.monotonic() < deadline, "private PostgreSQL did not start"
            time.sleep(0.2)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGINT)  # fast shutdown of the process group we started
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
async def superuser(private_server: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await connect(private_server)
    try:
        yield conn
    finally:
        await conn.close()


async def owned_database(superuser: asyncpg.Connection, server_url: str, name: str) -> str:
    """A database owned by `tam_owner`, a login role that is not a superuser; its URL as that role."""
    if not await superuser.fetchval("select exists (select 1 from pg_roles where rolname = 'tam_owner')"):
        await superuser.execute("create role tam_owner login nosuperuser nobypassrls")
    await superuser.execute(f"create database {name} owner tam_owner")
    return database_url(server_url, name).replace("postgresql://postgres@", "postgresql://tam_owner@")


async def backend_round_trip(url: str) -> None:
    """What the PostgreSQL adapter does for a job, through its repos."""
    pool = await open_pool(url, max_size=2)
    try:
        now = datetime.now(UTC)
        project = await PostgresProjectRepo(pool).add(Project(name="p", icp="icp"))
        result = await PostgresCompanyRepo(pool).add_many(project.id, [NewCompany("A", "a.com")])
        assert (result.inserted, result.skipped) == (1, 0)
        assert [c.domain for c in await PostgresCompanyRepo(pool).pending_qualification(project.id)] == ["a.com"]
        jobs = PostgresJobRepo(pool)
        job = await jobs.add(Job(project_id=project.id, job_type=JobType.QUALIFY))
        claimed = await jobs.claim_dispatch(job.id, project.id, JobType.QUALIFY, "t", now, now)
        assert (claimed.outcome, claimed.job.task_id) == (ClaimOutcome.CLAIMED, "t")
        assert (await jobs.start(job.id, now)).status is JobStatus.RUNNING
        finished = await jobs.finish(job.id, JobStatus.COMPLETED, "done", None, now)
        assert (finished.status, finished.progress) == (JobStatus.COMPLETED, 100)
    finally:
        await pool.close()


async def test_plain_postgresql_without_supabase_roles(private_server: str, superuser: asyncpg.Connection) -> None:
    roles = ["anon", "authenticated", "service_role"]
    assert await superuser.fetchval("select count(*) from pg_roles where rolname = any($1)", roles) == 0
    url = await owned_database(superuser, private_server, "plain")
    applied = await PostgresMigrator(url).run()
    assert applied[-1] == "20261202100000_tam_security.sql"
    assert await PostgresMigrator(url).run() == []  # tam migrate stays idempotent
    assert await superuser.fetchval("select count(*) from pg_roles where rolname = any($1)", roles) == 0

    db = await connect(url)
    try:
        tables = [r["relname"] for r in await db.fetch(TAM_TABLES)]
        assert {*READ_TABLES, "tam_schema_migrations"} <= set(tables)
        for table in tables:
            assert await db.fetchval("select relrowsecurity from pg_class where oid = $1::regclass", table), table
        assert await db.fetchval("select count(*) from pg_policies where tablename like 'tam\\_%'") == 0
        routines = await db.fetch(TAM_ROUTINES)
        assert len(routines) >= 13
        for routine in routines:  # PUBLIC (every role of the cluster) executes none of them
            assert routine["proconfig"] and not routine["prosecdef"], routine["signature"]
            acl = await db.fetchval("select proacl::text from pg_proc where oid = $1", routine["oid"])
            assert acl == "{tam_owner=X/tam_owner}", (routine["signature"], acl)
        # Plain PostgreSQL keeps its default privileges (documented in docs/deploy.md).
        assert await db.fetchval("select count(*) from pg_default_acl") == 0
    finally:
        await db.close()
    await backend_round_trip(url)  # the owner is not a superuser: row-level security does not apply to it


async def test_supabase_shaped_with_a_migrating_role_that_is_not_superuser(
    private_server: str, superuser: asyncpg.Connection
) -> None:
    await superuser.execute(SUPABASE_ROLES)
    url = await owned_database(superuser, private_server, "supabase_shaped")
    owner = await connect(url)
    try:
        await owner.execute(SUPABASE_DEFAULT_PRIVILEGES)  # `for role tam_owner`, as Supabase's are for postgres
        await PostgresMigrator(url).run()
        assert await exposures(owner) == []
        # The migrating role's later objects stay closed to the browser roles.
        transaction = owner.transaction()
        await transaction.start()
        try:
            await owner.execute("create function tam_probe_later() returns int language sql as 'select 1'")
            await owner.execute("create table tam_probe_later (id int)")
            for role in ("anon", "authenticated"):
                assert not await owner.fetchval(
                    "select has_function_privilege($1, 'tam_probe_later()', 'EXECUTE')", role
                )
                assert not await owner.fetchval("select has_table_privilege($1, 'tam_probe_later', 'SELECT')", role)
        finally:
            await transaction.rollback()
    finally:
        await owner.close()
    await superuser.execute("grant service_role to tam_owner")  # as Supabase's authenticator may switch to it
    await backend_round_trip(as_role(url, "service_role"))
    await backend_round_trip(url)
