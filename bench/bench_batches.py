"""Batch-mode benchmark (issue 16): a qualify of N companies (default 20,000) through the Message
Batches API against the fake Anthropic (in its own process), on PostgreSQL, beside an online qualify
of the same kind of companies; then a SIGKILL mid-batch.

Setup: a scratch database on the server (`tam migrate`), no Redis (the job runs in this process with
the local limiter), TAM_PROVIDERS=live with ANTHROPIC_BASE_URL at the fake, TAM_CLAUDE_MODEL
claude-sonnet-5-5. The fake answers every batched request with its own Messages handler once the batch
is `--batch-seconds` old. Measured:

- tam CPU per company in batch mode: this process's user + system CPU (getrusage, every thread) over
  the job's run (building and sending the requests, polling, streaming results, storing verdicts),
  divided by N; wall time beside it (mostly the fake's batch delay);
- dollars per company recorded for the batch job and for an online job (`--online` companies, the
  same prompt shape), by the built-in price table: batch should be half;
- SIGKILL: a child process runs a batch job (`--kill-companies`) and is killed (SIGKILL) once the
  batch id is stored; this process then runs the job again: it polls the same batch, so the fake
  counts one create, and every company gets its verdict.

Usage: .venv/bin/python bench/bench_batches.py [--companies 20000] [--online 2000] [--batch-seconds 5]
Prints one JSON line and a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import resource
import signal
import sys
import time
import uuid
from pathlib import Path
from typing import Any
from uuid import UUID

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_process import FakeProcess
from tam.containers import Services, open_services, run_job
from tam.domain.model import Job, JobStatus, JobType, NewCompany, Project, Usage
from tam.settings import Settings
from worker_process import create_database, drop_database, migrate

KEY = "bench-key"
KILL_HEARTBEAT = 3.0  # seconds; a short heartbeat timeout so the SIGKILL case takes over quickly


def _settings(db: str, fake_url: str, mode: str, heartbeat_timeout: float = 15) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        tam_store="postgres",
        database_url=db,
        redis_url=None,
        tam_providers="live",
        anthropic_api_key=KEY,
        anthropic_base_url=fake_url,
        tam_claude_model="claude-sonnet-5-5",
        tam_qualify_mode=mode,
        tam_qualify_batch_poll=0.5,
        tam_worker_heartbeat_timeout=heartbeat_timeout,
    )


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _job(c: Services, name: str, n: int) -> Job:
    tag = uuid.uuid4().hex[:6]
    project = await c.projects.add(Project(name=name, icp="B2B software for logistics teams"))
    rows = [
        NewCompany(name=f"C{i}", domain=f"c{i}-{tag}.example.com", description=f"Fleet routing software, {i % 9} sites")
        for i in range(n)
    ]
    for start in range(0, n, 5000):
        await c.companies.add_many(project.id, rows[start : start + 5000])
    return await c.jobs.add(Job(project_id=project.id, job_type=JobType.QUALIFY))


async def _measure(c: Services, name: str, n: int) -> dict[str, Any]:
    job = await _job(c, name, n)
    started, cpu = time.perf_counter(), _cpu()
    done = await run_job(c, job.id, 3600)
    wall, cpu = time.perf_counter() - started, _cpu() - cpu
    assert done.status is JobStatus.COMPLETED, done.error
    prices = c.prices
    # the same tokens at online prices: what the batch discount alone is worth
    as_online = Usage({unit.replace("claude_batch_", "claude_", 1): n for unit, n in done.usage.counts.items()})
    return {
        "n": n,
        "wall_s": wall,
        "cpu_s": cpu,
        "cost_usd": prices.cost(done.usage),
        "same_tokens_online_usd": prices.cost(as_online),
        "usage": dict(done.usage.counts),
    }


def _child(db: str, fake_url: str, job_id: str) -> None:
    async def main() -> None:
        async with open_services(_settings(db, fake_url, "batch", KILL_HEARTBEAT)) as c:
            await run_job(c, UUID(job_id), 3600)

    asyncio.run(main())


async def _sigkill(db: str, fake: FakeProcess, n: int) -> dict[str, Any]:
    async with open_services(_settings(db, fake.url, "batch", KILL_HEARTBEAT)) as c:
        job = await _job(c, "killed", n)
        creates = fake.stats()["batch_creates"]
        child = mp.get_context("spawn").Process(target=_child, args=(db, fake.url, str(job.id)))
        child.start()
        jobs = c.jobs
        deadline = time.monotonic() + 120
        while not (await jobs.get(job.id)).batch_id:
            assert time.monotonic() < deadline, "the child never stored a batch id"
            await asyncio.sleep(0.05)
        assert child.pid is not None
        os.kill(child.pid, signal.SIGKILL)
        child.join()
        batch_id = (await jobs.get(job.id)).batch_id
        # as a live worker would: the killed attempt's lease holds until its heartbeat is stale, then
        # the next attempt takes the job over and polls the stored batch
        killed_at = time.monotonic()
        while (done := await run_job(c, job.id, 3600)).status is JobStatus.RUNNING:
            assert time.monotonic() < deadline, "the job was never taken over"
            await asyncio.sleep(0.5)
        takeover_s = time.monotonic() - killed_at
        pending = len(await c.companies.pending_qualification(job.project_id))
        return {
            "n": n,
            "child_exit": child.exitcode,
            "batch_id_after_kill": batch_id,
            "creates": fake.stats()["batch_creates"] - creates,
            "takeover_and_finish_s": takeover_s,
            "status": done.status.value,
            "items_done": done.items_done,
            "left_pending": pending,
        }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--companies", type=int, default=20_000)
    parser.add_argument("--online", type=int, default=2_000)
    parser.add_argument("--kill-companies", type=int, default=2_000)
    parser.add_argument("--batch-seconds", type=float, default=5.0)
    parser.add_argument(
        "--server", default=os.environ.get("TAM_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    args = parser.parse_args()
    db = await create_database(args.server)
    try:
        migrate({"TAM_STORE": "postgres", "DATABASE_URL": db})
        with FakeProcess("anthropic", api_key=KEY, options={"batch_seconds": args.batch_seconds}) as fake:
            async with open_services(_settings(db, fake.url, "online")) as c:
                online = await _measure(c, "online", args.online)
            async with open_services(_settings(db, fake.url, "batch")) as c:
                before = fake.stats()
                batch = await _measure(c, "batchy", args.companies)
                after = fake.stats()
            batch["creates"] = after["batch_creates"] - before["batch_creates"]
            batch["online_requests"] = after["requests"] - before["requests"] - args.companies  # batched are logged
            killed = await _sigkill(db, fake, args.kill_companies)
    finally:
        await drop_database(args.server, db)

    per = {
        "batch_cpu_ms_per_company": batch["cpu_s"] / batch["n"] * 1000,
        "batch_usd_per_company": batch["cost_usd"] / batch["n"],
        "online_usd_per_company": online["cost_usd"] / online["n"],
        "online_cpu_ms_per_company": online["cpu_s"] / online["n"] * 1000,
    }
    per["batch_over_online_cost"] = per["batch_usd_per_company"] / per["online_usd_per_company"]
    per["batch_over_same_tokens_online"] = batch["cost_usd"] / batch["same_tokens_online_usd"]
    print(json.dumps({"batch": batch, "online": online, "sigkill": killed, **per}))
    print()
    print(f"{'':28}{'batch':>14}{'online':>14}")
    print(f"{'companies':28}{batch['n']:>14,}{online['n']:>14,}")
    print(f"{'wall s':28}{batch['wall_s']:>14.1f}{online['wall_s']:>14.1f}")
    cpu_b, cpu_o = per["batch_cpu_ms_per_company"], per["online_cpu_ms_per_company"]
    print(f"{'tam CPU ms per company':28}{cpu_b:>14.3f}{cpu_o:>14.3f}")
    print(f"{'USD per company':28}{per['batch_usd_per_company']:>14.6f}{per['online_usd_per_company']:>14.6f}")
    print(f"{'batch / online cost':28}{per['batch_over_online_cost']:>14.3f}")
    print(f"{'batch / same tokens online':28}{per['batch_over_same_tokens_online']:>14.3f}")
    print(f"{'batches created':28}{batch['creates']:>14}")
    print(
        f"SIGKILL mid-batch ({killed['n']:,} companies): child exit {killed['child_exit']}, "
        f"batches created {killed['creates']}, resumed job {killed['status']} "
        f"({killed['takeover_and_finish_s']:.1f} s after the kill), {killed['left_pending']} left pending"
    )


if __name__ == "__main__":
    asyncio.run(main())
