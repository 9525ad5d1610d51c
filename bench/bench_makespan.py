"""Makespan benchmark (issue 6, benchmark 1): qualify through the real ClaudeQualifier and JobRunner into
a real store, against the fake Claude server with log-normal latency (mean 50 ms, sigma 0.5).

For each size (150 and 1,000 companies at concurrency 10) and each repetition, on the same fake and store:
- tam: a qualify job through JobRunner.run (sliding window of 10 workers, progress batched);
- seed: the seed's design, the same adapter called in fixed batches of 10 awaited with asyncio.gather,
  each verdict written the same way (record_qualification), progress written after every batch;
- ideal: the sum of the latencies the fake actually served during the run, divided by 10.

The fake runs in a child process (bench/fake_process.py) so it does not compete for this process's GIL.
Usage: .venv/bin/python bench/bench_makespan.py [--reps 5] [--sizes 150,1000] [--store sqlite|postgres]
       [--loop uvloop|asyncio]   (uvloop by default: the loop tam worker and tam serve run jobs on)
Prints one JSON line (medians and ratios) and a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_process import FakeProcess
from tam.containers import migrator, open_services, run_job
from tam.domain.model import Job, JobType, NewCompany, Progress, Project, QualificationStatus
from tam.settings import Settings

CONCURRENCY = 10
API_KEY = "bench-key"
# The rate limit the fake announces. The ideal pace (10 calls / 50 ms = 12,000/min) is three times the
# fake's default of 4,000/min, which the pacer learns and keeps to: the makespan would measure that.
FAKE_RPM = 1_000_000


def companies(n: int, tag: str) -> list[NewCompany]:
    return [NewCompany(name=f"Company {i} {tag}", domain=f"c{i:05d}-{tag}.example.com") for i in range(n)]


class Bench:
    def __init__(self, container: Any, fake: FakeProcess) -> None:
        self.c = container
        self.fake = fake

    async def setup(self) -> None:
        self.projects = self.c.projects
        self.companies = self.c.companies
        self.jobs = self.c.jobs
        self.qualifier = self.c.vendors.qualifier
        self.clock = self.c.clock

    async def project(self, n: int) -> Project:
        tag = uuid.uuid4().hex[:8]
        project = await self.projects.add(Project(name=f"bench {tag}", icp="B2B software companies in Europe"))
        await self.companies.add_many(project.id, companies(n, tag))
        return project

    async def tam(self, n: int) -> dict[str, float]:
        project = await self.project(n)
        job = await self.jobs.add(Job(project_id=project.id, job_type=JobType.QUALIFY))
        self.fake.served()
        fake_cpu, cpu = self.fake.stats()["cpu_s"], time.process_time()
        started = time.perf_counter()
        done = await run_job(self.c, job.id)
        elapsed = time.perf_counter() - started
        cpu, fake_cpu = time.process_time() - cpu, self.fake.stats()["cpu_s"] - fake_cpu
        assert done.items_done == n and done.items_failed == 0, done
        return {
            "makespan": elapsed,
            "ideal": sum(self.fake.served()) / CONCURRENCY,
            "cpu_ms_per_item": cpu / n * 1000,
            "fake_cpu_ms_per_item": fake_cpu / n * 1000,
        }

    async def seed(self, n: int) -> dict[str, float]:
        """The seed's plan: batches of 10 awaited together, each waiting for its slowest member."""
        project = await self.project(n)
        job = await self.jobs.add(Job(project_id=project.id, job_type=JobType.QUALIFY))
        await self.jobs.start(job.id, self.clock.now())
        self.fake.served()
        started = time.perf_counter()
        pending = await self.companies.pending_qualification(project.id)
        finished = 0
        for i in range(0, len(pending), CONCURRENCY):
            batch = pending[i : i + CONCURRENCY]
            verdicts = await asyncio.gather(*(self.qualifier.qualify(project, c) for c in batch))
            for company, verdict in zip(batch, verdicts, strict=True):
                status = QualificationStatus.QUALIFIED if verdict.qualified else QualificationStatus.DISQUALIFIED
                await self.companies.record_qualification(company.id, status, verdict.reason, self.clock.now())
            finished += len(batch)
            progress = Progress(len(pending), finished, 0, f"Qualified {finished} of {len(pending)} companies")
            await self.jobs.save_progress(job.id, progress, verdicts[0].usage, self.clock.now())
        elapsed = time.perf_counter() - started
        return {"makespan": elapsed, "ideal": sum(self.fake.served()) / CONCURRENCY}


def settings_for(store: str, url: str, where: str) -> Settings:
    common: dict[str, Any] = {
        "tam_providers": "live",
        "anthropic_api_key": API_KEY,
        "anthropic_base_url": url,
        "tam_qualify_concurrency": CONCURRENCY,
        "tam_qualify_mode": "online",  # the sliding window of Messages calls; auto sends 1,000 to a batch
    }
    if store == "postgres":
        return Settings(tam_store="postgres", database_url=where, **common)
    return Settings(tam_store="sqlite", tam_sqlite_path=where, **common)


async def measure(args: argparse.Namespace, url: str, fake: FakeProcess, where: str) -> dict[str, Any]:
    settings = settings_for(args.store, url, where)
    if args.store == "postgres":
        await migrator(settings).run()
    async with open_services(settings) as container:
        bench = Bench(container, fake)
        await bench.setup()
        await bench.tam(20)  # warm up: imports the SDK, opens connections
        await bench.seed(20)
        runs: dict[tuple[str, int], list[dict[str, float]]] = {}
        for _ in range(args.reps):
            for n in args.sizes:
                runs.setdefault(("tam", n), []).append(await bench.tam(n))
                runs.setdefault(("seed", n), []).append(await bench.seed(n))
    fake_stats = fake.stats()

    result: dict[str, Any] = {
        "bench": "makespan",
        "store": args.store,
        "concurrency": CONCURRENCY,
        "latency_mean_s": args.latency,
        "sigma": args.sigma,
        "reps": args.reps,
        "loop": args.loop,
        "fake_peak_in_flight": fake_stats["peak_in_flight"],
    }
    for n in args.sizes:
        tam, seed = runs[("tam", n)], runs[("seed", n)]
        tam_ms = statistics.median(r["makespan"] for r in tam)
        seed_ms = statistics.median(r["makespan"] for r in seed)
        result[str(n)] = {
            "tam_makespan_s": round(tam_ms, 3),
            "seed_makespan_s": round(seed_ms, 3),
            "ideal_s": round(statistics.median(r["ideal"] for r in tam), 3),
            "tam_over_ideal": round(statistics.median(r["makespan"] / r["ideal"] for r in tam), 3),
            "seed_over_ideal": round(statistics.median(r["makespan"] / r["ideal"] for r in seed), 3),
            "tam_over_seed": round(tam_ms / seed_ms, 3),
            "tam_over_ideal_all": [round(r["makespan"] / r["ideal"], 3) for r in tam],
            # CPU per company in this process (SDK, runner, store) and in the fake: with the ideal pace
            # of 10 / 50 ms = 200 calls/s, this process alone needs 200 * cpu_ms / 1000 of one core.
            "tam_cpu_ms_per_item": round(statistics.median(r["cpu_ms_per_item"] for r in tam), 2),
            "fake_cpu_ms_per_item": round(statistics.median(r["fake_cpu_ms_per_item"] for r in tam), 2),
        }
    return result


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--sizes", default="150,1000")
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--sigma", type=float, default=0.5)
    parser.add_argument("--store", choices=("sqlite", "postgres"), default="sqlite")
    parser.add_argument(
        "--server",
        default=os.environ.get("TAM_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="with --store postgres: a server where a scratch database may be created",
    )
    parser.add_argument(
        "--loop",
        choices=("uvloop", "asyncio"),
        default="uvloop",
        help="the event loop (uvloop: as tam worker and tam serve run jobs)",
    )
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    return args


async def main(args: argparse.Namespace) -> None:

    with FakeProcess(
        "anthropic", api_key=API_KEY, latency=args.latency, sigma=args.sigma, seed=11, rate_limit=FAKE_RPM
    ) as fake:
        if args.store == "postgres":
            import asyncpg

            name = f"tam_bench_{uuid.uuid4().hex[:10]}"
            admin = await asyncpg.connect(args.server)
            await admin.execute(f'create database "{name}"')
            try:
                where = urlunsplit(urlsplit(args.server)._replace(path="/" + name))
                result = await measure(args, fake.url, fake, where)
            finally:
                await admin.execute(f'drop database if exists "{name}" with (force)')
                await admin.close()
        else:
            with tempfile.TemporaryDirectory() as tmp:
                result = await measure(args, fake.url, fake, str(Path(tmp) / "bench.db"))

    print(json.dumps(result))
    print()
    header = f"{'companies':>10}{'tam s':>9}{'seed s':>9}{'ideal s':>9}"
    print(header + f"{'tam/ideal':>11}{'seed/ideal':>12}{'tam/seed':>10}")
    for n in args.sizes:
        r = result[str(n)]
        print(
            f"{n:>10,}{r['tam_makespan_s']:>9.2f}{r['seed_makespan_s']:>9.2f}{r['ideal_s']:>9.2f}"
            f"{r['tam_over_ideal']:>11.3f}{r['seed_over_ideal']:>12.3f}{r['tam_over_seed']:>10.3f}"
        )
    for n in args.sizes:
        r = result[str(n)]
        print(f"{n:>10,}  CPU per company: tam {r['tam_cpu_ms_per_item']} ms, fake {r['fake_cpu_ms_per_item']} ms")
    print("targets: tam/ideal <= 1.10 at 1,000 and <= 1.15 at 150; tam/seed <= 0.65 at 150")


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.loop == "uvloop":
        import uvloop

        uvloop.run(main(arguments))
    else:
        asyncio.run(main(arguments))
