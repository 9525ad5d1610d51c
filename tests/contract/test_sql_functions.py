"""The SQL that the Supabase adapter relies on (tables, defaults, constraints and the tam_* functions
it calls by RPC), exercised directly in real PostgreSQL."""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

import asyncpg
import pytest

from tam.adapters.postgres import connect_options
from tam.domain.model import person_key


async def a_project(pool: Any) -> UUID:
    return await pool.fetchval("insert into tam_projects (name) values ('p') returning id")  # type: ignore[no-any-return]


async def a_company(pool: Any, project_id: UUID, domain: str = "a.com") -> UUID:
    return await pool.fetchval(  # type: ignore[no-any-return]
        "insert into tam_companies (project_id, name, domain) values ($1, 'A', $2) returning id", project_id, domain
    )


@pytest.mark.parametrize("job_type", ["qualify", "findContacts", "find_contacts", "checkLinkedin"])
async def test_a_job_row_with_only_project_and_type_is_valid(pg_pool: Any, job_type: str) -> None:
    project_id = await a_project(pg_pool)
    row = await pg_pool.fetchrow(
        "insert into tam_job_queue (project_id, job_type) values ($1, $2) returning *", project_id, job_type
    )
    assert isinstance(row["id"], UUID)
    assert (row["status"], row["progress"], row["items_total"], row["items_done"], row["items_failed"]) == (
        "pending",
        0,
        0,
        0,
        0,
    )
    assert (row["attempts"], row["usage"], row["task_id"]) == (0, {}, None)
    assert row["created_at"] is not None and row["updated_at"] is not None


async def test_the_frontend_may_give_id_and_status(pg_pool: Any) -> None:
    project_id, job_id = await a_project(pg_pool), uuid4()
    await pg_pool.execute(
        "insert into tam_job_queue (id, project_id, job_type, status) values ($1, $2, 'qualify', 'running')",
        job_id,
        project_id,
    )
    assert await pg_pool.fetchval("select status from tam_job_queue where id = $1", job_id) == "running"


@pytest.mark.parametrize(
    ("column", "value"),
    [("status", "bogus"), ("progress", 101), ("progress", -1), ("job_type", "mine_bitcoin"), ("items_done", -3)],
)
async def test_job_constraints_refuse_bad_values(pg_pool: Any, column: str, value: object) -> None:
    project_id = await a_project(pg_pool)
    row = {"project_id": project_id, "job_type": "qualify", column: value}
    with pytest.raises(asyncpg.CheckViolationError):
        await pg_pool.execute(
            f"insert into tam_job_queue ({', '.join(row)}) values ({', '.join(f'${i + 1}' for i in range(len(row)))})",
            *row.values(),
        )


async def test_companies_are_unique_per_project_and_domain(pg_pool: Any) -> None:
    project_id = await a_project(pg_pool)
    await a_company(pg_pool, project_id)
    with pytest.raises(asyncpg.UniqueViolationError):
        await a_company(pg_pool, project_id)
    with pytest.raises(asyncpg.CheckViolationError):
        await a_company(pg_pool, project_id, "Upper.COM")


async def test_updated_at_follows_writes_that_do_not_set_it(pg_pool: Any) -> None:
    project_id = await a_project(pg_pool)
    job_id = await pg_pool.fetchval(
        "insert into tam_job_queue (project_id, job_type, updated_at) values ($1, 'qualify', now() - interval '1 hour')"
        " returning id",
        project_id,
    )
    before = await pg_pool.fetchval("select updated_at from tam_job_queue where id = $1", job_id)
    await pg_pool.execute("update tam_job_queue set message = 'x' where id = $1", job_id)
    assert await pg_pool.fetchval("select updated_at from tam_job_queue where id = $1", job_id) > before


async def test_dispatch_job_validates_and_claims_in_one_call(pg_pool: Any) -> None:
    """tam_dispatch_job, as the Supabase adapter calls it by RPC: the outcome, the task id a requeue
    replaced, the job row and the active job's, as JSON; the job types' two spellings are one type."""
    project_id = await a_project(pg_pool)
    job_id, sibling_id = [
        await pg_pool.fetchval(
            "insert into tam_job_queue (project_id, job_type) values ($1, $2) returning id", project_id, job_type
        )
        for job_type in ("find_contacts", "findContacts")
    ]
    dispatch = """select outcome, previous_task_id, active, to_jsonb(job) as job
                    from tam_dispatch_job($1, $2, $3, $4, now(), now() - interval '15 seconds')"""
    first = await pg_pool.fetchrow(dispatch, job_id, project_id, "findContacts", "first")
    assert (first["outcome"], first["previous_task_id"], first["active"]) == ("claimed", None, None)
    assert (first["job"]["id"], first["job"]["task_id"]) == (str(job_id), "first")
    again = await pg_pool.fetchrow(dispatch, job_id, project_id, "find_contacts", "second")
    assert (again["outcome"], again["job"]["task_id"]) == ("kept", "first")
    refused = await pg_pool.fetchrow(dispatch, sibling_id, project_id, "findContacts", "third")
    assert (refused["outcome"], refused["active"]["id"], refused["job"]["status"]) == (
        "refused",
        str(job_id),
        "cancelled",
    )
    assert refused["job"]["message"] == f"job {job_id} of type find_contacts is already pending for this project"
    for args, outcome in [
        ((uuid4(), "findContacts"), "other_project"),
        ((project_id, "qualify"), "other_type"),
        ((project_id, "findContacts"), "finished"),  # the sibling, cancelled above
    ]:
        row = await pg_pool.fetchrow(dispatch, sibling_id if outcome == "finished" else job_id, *args, "x")
        assert row["outcome"] == outcome
    with pytest.raises(asyncpg.NoDataFoundError, match="not found"):
        await pg_pool.fetchrow(dispatch, uuid4(), project_id, "qualify", "x")


async def test_dispatch_job_commits_without_waiting_for_the_wal_flush(pg_pool: Any) -> None:
    """Its transaction commits asynchronously (the Redis message that follows is not fsynced either);
    the session's setting is left as it was."""
    project_id = await a_project(pg_pool)
    job_id = await pg_pool.fetchval(
        "insert into tam_job_queue (project_id, job_type) values ($1, 'qualify') returning id", project_id
    )
    async with pg_pool.acquire() as conn:
        before = await conn.fetchval("show synchronous_commit")
        async with conn.transaction():
            await conn.fetchrow(
                "select outcome from tam_dispatch_job($1, $2, 'qualify', 't', now(), now())", job_id, project_id
            )
            assert await conn.fetchval("show synchronous_commit") == "off"
        assert await conn.fetchval("show synchronous_commit") == before


async def test_dispatch_job_requeues_a_running_job_with_no_heartbeat(pg_pool: Any) -> None:
    project_id = await a_project(pg_pool)
    job_id = await pg_pool.fetchval(
        """insert into tam_job_queue (project_id, job_type, status, task_id, attempts, heartbeat_at, updated_at)
           values ($1, 'qualify', 'running', 'old', 1, now() - interval '1 minute', now() - interval '1 minute')
           returning id""",
        project_id,
    )
    dispatch = """select outcome, previous_task_id, to_jsonb(job) as job
                    from tam_dispatch_job($1, $2, 'qualify', $3, now(), now() - interval '15 seconds')"""
    row = await pg_pool.fetchrow(dispatch, job_id, project_id, "new")
    assert (row["outcome"], row["previous_task_id"], row["job"]["task_id"]) == ("requeued", "old", "new")
    again = await pg_pool.fetchrow(dispatch, job_id, project_id, "newer")  # fresh now: kept
    assert (again["outcome"], again["job"]["task_id"]) == ("kept", "new")


async def test_save_job_progress_never_lowers_progress(pg_pool: Any) -> None:
    project_id = await a_project(pg_pool)
    job_id = await pg_pool.fetchval(
        "insert into tam_job_queue (project_id, job_type) values ($1, 'qualify') returning id", project_id
    )
    save = "select 1 from tam_save_job_progress($1, $2, 10, $3, 0, $4, $5::jsonb, now())"
    await pg_pool.execute(save, job_id, 60, 6, "6 of 10", {"tokens": 9})  # not running yet: ignored
    assert await pg_pool.fetchval("select progress from tam_job_queue where id = $1", job_id) == 0
    await pg_pool.execute("select 1 from tam_start_job($1, now())", job_id)
    await pg_pool.execute(save, job_id, 60, 6, "6 of 10", {"tokens": 9})
    await pg_pool.execute(save, job_id, 30, 3, "3 of 10", {"tokens": 12})
    await pg_pool.execute(save, job_id, 250, 10, "way over", {})
    row = await pg_pool.fetchrow("select progress, items_done, message, usage from tam_job_queue where id = $1", job_id)
    assert (row["progress"], row["items_done"], row["message"], row["usage"]) == (100, 10, "way over", {})
    with pytest.raises(asyncpg.NoDataFoundError):
        await pg_pool.execute(save, uuid4(), 1, 1, "x", {})


async def test_job_lifecycle_functions(pg_pool: Any) -> None:
    project_id = await a_project(pg_pool)
    job_id = await pg_pool.fetchval(
        "insert into tam_job_queue (project_id, job_type) values ($1, 'qualify') returning id", project_id
    )
    started = await pg_pool.fetchrow("select * from tam_start_job($1, now())", job_id)
    assert (started["status"], started["attempts"]) == ("running", 1)
    done = await pg_pool.fetchrow("select * from tam_finish_job($1, 'completed', 'ok', null, now())", job_id)
    assert (done["status"], done["progress"], done["message"]) == ("completed", 100, "ok")
    cancelled = await pg_pool.fetchrow("select * from tam_cancel_job($1, now())", job_id)
    assert cancelled["status"] == "completed"
    with pytest.raises(asyncpg.NoDataFoundError):
        await pg_pool.fetchrow("select * from tam_start_job($1, now())", uuid4())


async def test_add_companies_reports_inserted_and_skipped(pg_pool: Any) -> None:
    project_id = await a_project(pg_pool)
    payload = [{"name": "Ä", "domain": "a.com"}, {"name": "B", "domain": "b.com", "similarity": 0.5}]
    add = "select * from tam_add_companies($1, $2::jsonb)"
    assert tuple(await pg_pool.fetchrow(add, project_id, payload)) == (2, 0)
    assert tuple(await pg_pool.fetchrow(add, project_id, [*payload, {"name": "C", "domain": "c.com"}])) == (1, 2)
    name = "select name from tam_companies where project_id = $1 and domain = 'a.com'"
    assert await pg_pool.fetchval(name, project_id) == "Ä"
    with pytest.raises(asyncpg.NoDataFoundError):
        await pg_pool.fetchrow(add, uuid4(), payload)


@pytest.mark.parametrize(
    ("linkedin_url", "provider_person_id", "full_name"),
    [
        ("https://LinkedIn.com/in/Zoë/", "p1", "Zoë"),
        (None, "p-42", "Anyone"),
        ("", "", "  Émile   ZOLA\t"),
        (None, None, "Ünïcödé  Nâme"),
    ],
)
async def test_the_generated_person_key_matches_the_domain_rule(
    pg_pool: Any, linkedin_url: str | None, provider_person_id: str | None, full_name: str
) -> None:
    project_id = await a_project(pg_pool)
    company_id = await a_company(pg_pool, project_id)
    key = await pg_pool.fetchval(
        """insert into tam_contacts (project_id, company_id, full_name, linkedin_url, provider_person_id)
           values ($1, $2, $3, $4, $5) returning person_key""",
        project_id,
        company_id,
        full_name,
        linkedin_url,
        provider_person_id,
    )
    assert key == person_key(linkedin_url, provider_person_id, full_name)


async def test_record_company_contacts_is_atomic_and_counts_inserts(pg_pool: Any) -> None:
    project_id = await a_project(pg_pool)
    company_id = await a_company(pg_pool, project_id)
    people = [
        {"project_id": str(project_id), "full_name": "Ann", "linkedin_url": "https://linkedin.com/in/ann"},
        {"project_id": str(project_id), "full_name": "Ann again", "linkedin_url": "https://linkedin.com/in/ANN"},
        {"project_id": str(project_id), "full_name": "Bob", "email_status": "not_found"},
    ]
    record = "select tam_record_company_contacts($1, $2::jsonb, now())"
    assert await pg_pool.fetchval(record, company_id, people) == 2
    assert await pg_pool.fetchval(record, company_id, people) == 0
    assert await pg_pool.fetchval(
        "select contacts_searched_at is not null from tam_companies where id = $1", company_id
    )
    with pytest.raises(asyncpg.CheckViolationError):  # a bad row rolls the whole call back
        await pg_pool.fetchval(record, company_id, [{**people[2], "full_name": "Cy", "email_status": "maybe"}])
    with pytest.raises(asyncpg.NoDataFoundError):
        await pg_pool.fetchval(record, uuid4(), [])


async def test_record_linkedin_updates_all_or_nothing(pg_pool: Any) -> None:
    project_id = await a_project(pg_pool)
    company_id = await a_company(pg_pool, project_id)
    contact_id = await pg_pool.fetchval(
        "insert into tam_contacts (project_id, company_id, full_name, linkedin_url)"
        " values ($1, $2, 'A', 'https://linkedin.com/in/a') returning id",
        project_id,
        company_id,
    )
    checks = [{"contact_id": str(contact_id), "active": False, "detail": "dead_page"}]
    with pytest.raises(asyncpg.NoDataFoundError):
        await pg_pool.fetchval(
            "select tam_record_linkedin($1::jsonb, now())", [*checks, {"contact_id": str(uuid4()), "active": True}]
        )
    assert await pg_pool.fetchval("select linkedin_checked_at from tam_contacts where id = $1", contact_id) is None
    assert await pg_pool.fetchval("select tam_record_linkedin($1::jsonb, now())", checks) == 1
    stats = await pg_pool.fetchrow("select * from tam_contact_stats($1)", project_id)
    assert dict(stats) == {"total": 1, "with_email": 0, "linkedin_active": 0, "linkedin_inactive": 1}
    counts = await pg_pool.fetch("select * from tam_count_companies_by_status($1)", project_id)
    assert [tuple(r) for r in counts] == [("pending", 1)]


@pytest.mark.parametrize(
    ("url", "cached"),
    [
        ("postgresql://postgres:pw@db.abc.supabase.co:5432/postgres", True),
        ("postgresql://postgres.abc:pw@aws-0-eu-central-1.pooler.supabase.com:6543/postgres", False),
        ("postgres://u:pw@host:5432/db?pgbouncer=true&sslmode=require", False),
    ],
)
def test_a_transaction_pooler_gets_no_statement_cache(url: str, cached: bool) -> None:
    dsn, options = connect_options(url)
    assert ("statement_cache_size" not in options) is cached
    assert "pgbouncer" not in dsn
    if "sslmode" in url:
        assert "sslmode=require" in dsn


async def test_the_adapter_works_with_a_pgbouncer_style_url(migrated_database_url: str) -> None:
    from tam.adapters.postgres import PostgresProjectRepo, open_pool
    from tam.domain.model import Project

    pool = await open_pool(migrated_database_url + "?pgbouncer=true", max_size=2)
    try:
        repo = PostgresProjectRepo(pool)
        project = await repo.add(Project(name="via pooler", icp="x"))
        assert (await repo.get(project.id)).name == "via pooler"
    finally:
        await pool.close()
