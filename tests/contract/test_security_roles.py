"""The migrations on a database shaped like a Supabase project (its roles anon, authenticated and
service_role, and default privileges that grant them everything, set up before migrating), checked as
each role with SET ROLE. Tables and functions are found in the catalog, not listed here, so a tam_* table
or function that a later migration adds and leaves open fails `test_nothing_is_left_open`.

The storage contract suites (test_*_repo.py, test_sql_functions.py) run a second time as service_role on
this same schema, through the `store` and `pg_pool` fixtures."""

from __future__ import annotations

import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest
from starlette.testclient import TestClient

from tam.adapters.postgres.connection import connect
from tam.adapters.postgres.migrations import MIGRATIONS_DIR
from tam.adapters.supabase import repos as supabase_repos
from tam.entrypoints.api import create_app
from tam.settings import Settings
from tests.support.postgres import as_role, run_sync

READ_TABLES = ("tam_projects", "tam_companies", "tam_contacts", "tam_job_queue")
JOB_INSERT_COLUMNS = {"id", "project_id", "job_type", "status"}
TABLE_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE", "REFERENCES", "TRIGGER")
BACKEND_PRIVILEGES = ("SELECT", "INSERT", "UPDATE", "DELETE")
AT = "2026-12-02T00:00:00+00:00"

TAM_TABLES = r"""
select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
 where n.nspname = 'public' and c.relkind in ('r', 'p') and c.relname like 'tam\_%' order by 1
"""
TAM_ROUTINES = r"""
select p.oid, p.proname, p.oid::regprocedure::text as signature, p.prokind, p.prosecdef, p.proconfig,
       array(select format_type(t, null) from unnest(p.proargtypes::oid[]) as t) as arg_types
  from pg_proc p join pg_namespace n on n.oid = p.pronamespace
 where n.nspname = 'public' and p.proname like 'tam\_%' order by 3
"""


async def exposures(conn: asyncpg.Connection) -> list[str]:
    """Everything in public named tam_* that is open beyond what the security migration intends."""
    found = []
    for (table,) in await conn.fetch(TAM_TABLES):
        if not await conn.fetchval("select relrowsecurity from pg_class where oid = $1::regclass", table):
            found.append(f"{table}: row-level security off")
        for privilege in TABLE_PRIVILEGES:
            for role in ("anon", "authenticated"):
                allowed = role == "authenticated" and privilege == "SELECT" and table in READ_TABLES
                if not allowed and await conn.fetchval(
                    "select has_table_privilege($1, $2, $3)", role, table, privilege
                ):
                    found.append(f"{table}: {privilege} granted to {role}")
        columns = await conn.fetch(
            "select attname from pg_attribute where attrelid = $1::regclass and attnum > 0 and not attisdropped",
            table,
        )
        for (column,) in columns:
            for privilege in ("INSERT", "UPDATE", "REFERENCES"):
                allowed = privilege == "INSERT" and table == "tam_job_queue" and column in JOB_INSERT_COLUMNS
                granted = await conn.fetchval(
                    "select has_column_privilege('authenticated', $1, $2, $3)", table, column, privilege
                )
                if granted and not allowed:
                    found.append(f"{table}.{column}: {privilege} granted to authenticated")
        for privilege in BACKEND_PRIVILEGES:
            if not await conn.fetchval("select has_table_privilege('service_role', $1, $2)", table, privilege):
                found.append(f"{table}: {privilege} not granted to service_role")
    for routine in await conn.fetch(TAM_ROUTINES):
        name = routine["signature"]
        for role in ("anon", "authenticated"):
            if await conn.fetchval("select has_function_privilege($1, $2::oid, 'EXECUTE')", role, routine["oid"]):
                found.append(f"{name}: executable by {role}")
        if not await conn.fetchval("select has_function_privilege('service_role', $1::oid, 'EXECUTE')", routine["oid"]):
            found.append(f"{name}: not executable by service_role")
        if not any(setting.startswith("search_path=") for setting in routine["proconfig"] or []):
            found.append(f"{name}: no fixed search_path")
        if routine["prosecdef"]:
            found.append(f"{name}: security definer")
    return found


@pytest.fixture
async def admin(supabase_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    """The migrating role (the tables' owner, as `postgres` is on Supabase)."""
    conn = await connect(supabase_database_url)
    try:
        yield conn
    finally:
        await conn.close()


@asynccontextmanager
async def acting_as(conn: asyncpg.Connection, role: str) -> AsyncIterator[asyncpg.Connection]:
    """`role` for one transaction, rolled back at the end (so one refused statement spoils nothing else)."""
    transaction = conn.transaction()
    await transaction.start()
    try:
        await conn.execute(f"set local role {role}")
        yield conn
    finally:
        await transaction.rollback()


async def refused(conn: asyncpg.Connection, role: str, sql: str, *args: object) -> str:
    """Run `sql` as `role` and return PostgreSQL's refusal (insufficient_privilege, SQLSTATE 42501)."""
    async with acting_as(conn, role):
        with pytest.raises(asyncpg.InsufficientPrivilegeError) as refusal:
            await conn.execute(sql, *args)
    return str(refusal.value)


@pytest.fixture
async def seeded(admin: asyncpg.Connection) -> dict[str, UUID]:
    """One project with a company, a contact and a job, written by the backend."""
    project = await admin.fetchval("insert into tam_projects (name) values ('security') returning id")
    company = await admin.fetchval(
        "insert into tam_companies (project_id, name, domain) values ($1, 'A', 'a.com') returning id", project
    )
    contact = await admin.fetchval(
        "insert into tam_contacts (project_id, company_id, full_name, email) values ($1, $2, 'Ann', 'ann@a.com')"
        " returning id",
        project,
        company,
    )
    job = await admin.fetchval(
        "insert into tam_job_queue (project_id, job_type) values ($1, 'qualify') returning id", project
    )
    return {"project": project, "company": company, "contact": contact, "job": job}


async def test_the_roles_are_supabases(admin: asyncpg.Connection) -> None:
    roles = {r["rolname"]: r for r in await admin.fetch("select rolname, rolbypassrls from pg_roles")}
    assert {"anon", "authenticated", "service_role"} <= roles.keys()
    assert roles["service_role"]["rolbypassrls"] and not roles["authenticated"]["rolbypassrls"]


async def test_every_tam_table_has_row_level_security(admin: asyncpg.Connection) -> None:
    rows = await admin.fetch("select tablename, rowsecurity from pg_tables where tablename like 'tam_%'")
    tables = {r["tablename"]: r["rowsecurity"] for r in rows}
    assert set(READ_TABLES) | {"tam_schema_migrations"} <= tables.keys()
    assert all(tables.values()), tables


async def test_nothing_is_left_open(admin: asyncpg.Connection) -> None:
    routines = await admin.fetch(TAM_ROUTINES)
    assert {"tam_record_qualifications", "tam_start_job", "tam_touch_updated_at"} <= {r["proname"] for r in routines}
    assert await exposures(admin) == []


async def test_the_check_finds_what_a_later_migration_leaves_open(admin: asyncpg.Connection) -> None:
    """Objects created after the security migration by the migrating role: the changed default privileges
    keep them from anon and authenticated, and `exposures` reports what is still missing or opened."""
    transaction = admin.transaction()
    await transaction.start()
    try:
        await admin.execute("create table tam_probe_later (id int)")
        await admin.execute("create function tam_probe_later() returns int language sql as 'select 1'")
        for role in ("anon", "authenticated"):
            assert not await admin.fetchval("select has_table_privilege($1, 'tam_probe_later', 'SELECT')", role)
            assert not await admin.fetchval("select has_function_privilege($1, 'tam_probe_later()', 'EXECUTE')", role)
        found = await exposures(admin)
        assert "tam_probe_later: row-level security off" in found
        assert "tam_probe_later(): no fixed search_path" in found
        await admin.execute("grant execute on function tam_probe_later() to public")
        assert "tam_probe_later(): executable by anon" in await exposures(admin)
        await admin.execute("grant update (id) on tam_probe_later to authenticated")
        assert "tam_probe_later.id: UPDATE granted to authenticated" in await exposures(admin)
    finally:
        await transaction.rollback()


async def test_anon_reads_and_writes_nothing(admin: asyncpg.Connection, seeded: dict[str, UUID]) -> None:
    tables = [r["relname"] for r in await admin.fetch(TAM_TABLES)]
    for table in tables:
        assert "permission denied" in await refused(admin, "anon", f"select * from {table}")
        assert "permission denied" in await refused(admin, "anon", f"delete from {table}")
    await refused(
        admin, "anon", "insert into tam_job_queue (project_id, job_type) values ($1, 'qualify')", seeded["project"]
    )
    await refused(admin, "anon", "update tam_job_queue set progress = 100 where id = $1", seeded["job"])
    await refused(admin, "anon", "insert into tam_projects (name) values ('x')")


async def test_authenticated_reads_the_four_tables(admin: asyncpg.Connection, seeded: dict[str, UUID]) -> None:
    async with acting_as(admin, "authenticated"):
        assert await admin.fetchval("select current_user") == "authenticated"
        assert await admin.fetchval("select name from tam_projects where id = $1", seeded["project"]) == "security"
        assert await admin.fetchval("select domain from tam_companies where id = $1", seeded["company"]) == "a.com"
        assert await admin.fetchval("select email from tam_contacts where id = $1", seeded["contact"]) == "ann@a.com"
        assert await admin.fetchval("select status from tam_job_queue where id = $1", seeded["job"]) == "pending"
    assert "permission denied" in await refused(admin, "authenticated", "select * from tam_schema_migrations")


async def test_authenticated_inserts_a_job_row_as_the_frontend_does(
    admin: asyncpg.Connection, seeded: dict[str, UUID]
) -> None:
    project, job_id = seeded["project"], uuid4()
    async with acting_as(admin, "authenticated"):
        row = await admin.fetchrow(
            "insert into tam_job_queue (project_id, job_type) values ($1, 'findContacts') returning *", project
        )
        assert (row["status"], row["progress"], row["attempts"]) == ("pending", 0, 0)
        given = await admin.fetchrow(
            "insert into tam_job_queue (id, project_id, job_type, status) values ($1, $2, 'qualify', 'running')"
            " returning id, status",
            job_id,
            project,
        )
        assert (given["id"], given["status"]) == (job_id, "running")


@pytest.mark.parametrize(
    "sql",
    [
        "insert into tam_job_queue (project_id, job_type, progress) values ($1, 'qualify', 100)",
        "insert into tam_job_queue (project_id, job_type, items_done) values ($1, 'qualify', 5)",
        "insert into tam_job_queue (project_id, job_type, task_id) values ($1, 'qualify', 'mine')",
        "insert into tam_job_queue (project_id, job_type, status) values ($1, 'qualify', 'completed')",
        "insert into tam_projects (id, name) values ($1, 'mine')",
        "insert into tam_companies (project_id, name, domain) values ($1, 'B', 'b.com')",
    ],
)
async def test_authenticated_inserts_nothing_else(admin: asyncpg.Connection, seeded: dict[str, UUID], sql: str) -> None:
    message = await refused(admin, "authenticated", sql, seeded["project"] if "tam_projects" not in sql else uuid4())
    assert "permission denied" in message or "row-level security" in message


@pytest.mark.parametrize(
    ("sql", "key"),
    [
        (
            "update tam_companies set qualification_status = 'qualified', qualification_reason = 'x' where id = $1",
            "company",
        ),
        ("update tam_contacts set email = 'evil@x.com', email_status = 'verified' where id = $1", "contact"),
        ("update tam_contacts set linkedin_active = true where id = $1", "contact"),
        ("update tam_job_queue set progress = 100, status = 'completed' where id = $1", "job"),
        ("update tam_job_queue set status = 'cancelled' where id = $1", "job"),
        ("update tam_projects set name = 'mine' where id = $1", "project"),
        ("delete from tam_job_queue where id = $1", "job"),
        ("delete from tam_companies where id = $1", "company"),
        ("delete from tam_projects where id = $1", "project"),
    ],
)
async def test_authenticated_changes_no_verdict_contact_or_progress(
    admin: asyncpg.Connection, seeded: dict[str, UUID], sql: str, key: str
) -> None:
    assert "permission denied" in await refused(admin, "authenticated", sql, seeded[key])


@pytest.mark.parametrize("role", ["anon", "authenticated"])
async def test_no_tam_function_runs_for_the_browser_roles(admin: asyncpg.Connection, role: str) -> None:
    routines = await admin.fetch(TAM_ROUTINES)
    assert len(routines) >= 13
    for routine in routines:
        args = ", ".join(f"null::{t}" for t in routine["arg_types"])
        verb = "call" if routine["prokind"] == "p" else "select"
        message = await refused(admin, role, f"{verb} public.{routine['proname']}({args})")
        assert f"permission denied for {'procedure' if verb == 'call' else 'function'} {routine['proname']}" in message


async def test_the_backend_as_service_role_runs_every_step(
    supabase_database_url: str, admin: asyncpg.Connection, seeded: dict[str, UUID]
) -> None:
    """The edge function's look-up and the job's lifecycle through the functions the adapters call."""
    backend = await connect(as_role(supabase_database_url, "service_role"))
    try:
        assert await backend.fetchval("select current_user") == "service_role"
        job = seeded["job"]
        looked_up = await backend.fetchrow("select id, job_type, project_id from tam_job_queue where id = $1", job)
        assert (looked_up["job_type"], looked_up["project_id"]) == ("qualify", seeded["project"])
        claimed = await backend.fetchrow(
            "select outcome, (job).task_id from tam_dispatch_job($1, $2, 'qualify', 't-1', now(), now())",
            job,
            seeded["project"],
        )
        assert tuple(claimed) == ("claimed", "t-1")
        assert await backend.fetchval("select (tam_start_job($1, now())).status", job) == "running"
        await backend.execute(
            "select 1 from tam_save_job_progress($1, 50, 2, 1, 0, 'Qualified 1 of 2', '{}'::jsonb, now())", job
        )
        verdicts = [{"company_id": str(seeded["company"]), "status": "qualified", "reason": "fits", "at": AT}]
        assert await backend.fetchval("select tam_record_qualifications($1::jsonb)", verdicts) == 1
        assert (
            await backend.fetchval("select (tam_finish_job($1, 'completed', 'done', null, now())).progress", job) == 100
        )
    finally:
        await backend.close()
    async with acting_as(admin, "authenticated"):  # the frontend polling
        polled = await admin.fetchrow("select status, progress, message from tam_job_queue where id = $1", job)
        assert tuple(polled) == ("completed", 100, "done")
        verdict = await admin.fetchval(
            "select qualification_status from tam_companies where id = $1", seeded["company"]
        )
        assert verdict == "qualified"


def test_the_frontend_flow_through_the_api_with_row_level_security(
    supabase_database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The seed's flow: tam's API on PostgreSQL as service_role (jobs in-process), the frontend inserting
    the job row as authenticated, the edge function's POST /api/tam/run, and the frontend polling."""
    key = "security-test-key"
    for name in ("REDIS_URL", "TAM_LOG_FORMAT"):
        monkeypatch.delenv(name, raising=False)
    env = {
        "TAM_STORE": "postgres",
        "DATABASE_URL": as_role(supabase_database_url, "service_role"),
        "TAM_PROVIDERS": "sandbox",
        "TAM_SANDBOX_LATENCY": "0.01",
        "SERVICE_API_KEY": key,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    auth = {"x-api-key": key}
    frontend = Frontend(supabase_database_url)
    with TestClient(create_app(Settings(_env_file=None))) as api:
        created = api.post("/api/tam/projects", headers=auth, json={"name": "RLS", "icp": "B2B SaaS"})
        assert created.status_code == 201, created.text
        project_id = created.json()["id"]
        domains = ["acme.com", "globex.com", "initech.com"]
        imported = api.post(
            f"/api/tam/projects/{project_id}/companies",
            headers=auth,
            json=[{"name": d.split(".")[0], "domain": d} for d in domains],
        )
        assert imported.status_code == 200 and imported.json()["inserted"] == 3, imported.text
        job_id = frontend.insert_job(project_id, "qualify")
        run = api.post(
            "/api/tam/run", headers=auth, json={"jobId": job_id, "jobType": "qualify", "projectId": project_id}
        )
        assert run.status_code == 200 and run.json()["triggered"] is True, run.text
        deadline = time.monotonic() + 60
        while (row := frontend.job(job_id))["status"] not in ("completed", "failed", "cancelled"):
            assert time.monotonic() < deadline, row
            time.sleep(0.05)
        assert (row["status"], row["progress"], row["items_done"]) == ("completed", 100, 3), row
        assert frontend.pending_companies(project_id) == 0


class Frontend:
    """The frontend's reads and writes, as the `authenticated` role, on a private event loop."""

    def __init__(self, url: str) -> None:
        self._url = as_role(url, "authenticated")

    def _run(self, sql: str, *args: object) -> Any:
        async def go() -> Any:
            conn = await connect(self._url)
            try:
                return await conn.fetchrow(sql, *args)
            finally:
                await conn.close()

        return run_sync(go())

    def insert_job(self, project_id: str, job_type: str) -> str:
        job_id = str(uuid4())
        row = self._run(
            "insert into tam_job_queue (id, project_id, job_type, status) values ($1, $2, $3, 'running') returning id",
            UUID(job_id),
            UUID(project_id),
            job_type,
        )
        return str(row["id"])

    def job(self, job_id: str) -> dict[str, Any]:
        return dict(self._run("select * from tam_job_queue where id = $1", UUID(job_id)))

    def pending_companies(self, project_id: str) -> int:
        row = self._run(
            "select count(*) as n from tam_companies where project_id = $1 and qualification_status = 'pending'",
            UUID(project_id),
        )
        return int(row["n"])


async def test_the_security_migration_can_run_again(admin: asyncpg.Connection) -> None:
    """Re-applying the file (a partly applied `supabase db push`, or by hand) changes nothing."""
    before = await admin.fetch(
        "select tablename, policyname, roles, cmd, qual, with_check from pg_policies order by 1, 2"
    )
    sql = (MIGRATIONS_DIR / "20261202100000_tam_security.sql").read_text(encoding="utf-8")
    await admin.execute(sql)
    after = await admin.fetch(
        "select tablename, policyname, roles, cmd, qual, with_check from pg_policies order by 1, 2"
    )
    assert [tuple(r) for r in after] == [tuple(r) for r in before]
    assert await exposures(admin) == []


def test_the_dispatch_migration_closes_its_function_when_applied_after_the_security_one(
    postgres_server_url: str, tmp_path: Path
) -> None:
    """20261202050000_tam_dispatch_job.sql sorts before the security migration, but a database that ran
    the security migration earlier applies it after: it must close its own function the same way."""
    from tam.adapters.postgres.migrations import PostgresMigrator
    from tests.support.postgres import create_database, drop_database

    later = "20261202050000_tam_dispatch_job.sql"
    for path in MIGRATIONS_DIR.glob("*.sql"):
        if path.name != later:
            (tmp_path / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")

    async def check() -> None:
        url = await create_database(postgres_server_url, migrate=False, supabase=True)
        try:
            assert later not in await PostgresMigrator(url, tmp_path).run()
            (tmp_path / later).write_text((MIGRATIONS_DIR / later).read_text(encoding="utf-8"), encoding="utf-8")
            assert await PostgresMigrator(url, tmp_path).run() == [later]
            conn = await connect(url)
            try:
                assert "tam_dispatch_job" in {r["proname"] for r in await conn.fetch(TAM_ROUTINES)}
                assert await exposures(conn) == []
            finally:
                await conn.close()
        finally:
            await drop_database(postgres_server_url, url)

    run_sync(check())


def supabase_adapter_names() -> set[str]:
    """The tam_* tables and functions named in the Supabase adapter's source."""
    source = Path(supabase_repos.__file__).read_text(encoding="utf-8")
    return set(re.findall(r'"(tam_[a-z_]+)"', source))


async def test_what_the_supabase_adapter_calls_is_open_to_service_role_only(admin: asyncpg.Connection) -> None:
    """Every table and RPC that the Supabase adapter names (its HTTP calls are pinned in
    test_supabase_http.py) exists, is usable by service_role (the key it sends) and by no browser role
    beyond reading."""
    names = supabase_adapter_names()
    tables = {r["relname"] for r in await admin.fetch(TAM_TABLES)}
    functions = {r["proname"]: r["oid"] for r in await admin.fetch(TAM_ROUTINES)}
    assert {"tam_job_queue", "tam_record_qualifications", "tam_start_job"} <= names
    for name in names:
        assert name in tables or name in functions, f"{name} is not in the migrated schema"
        if name in tables:
            for privilege in BACKEND_PRIVILEGES:
                assert await admin.fetchval("select has_table_privilege('service_role', $1, $2)", name, privilege)
        else:
            oid = functions[name]
            assert await admin.fetchval("select has_function_privilege('service_role', $1::oid, 'EXECUTE')", oid)
            for role in ("anon", "authenticated"):
                assert not await admin.fetchval("select has_function_privilege($1, $2::oid, 'EXECUTE')", role, oid)
