"""Prompt-cache hit ratio of a qualify job (issue 10): 150 companies through the real ClaudeQualifier and
JobRunner (SQLite store, concurrency 10) against the fake Anthropic, which applies the documented caching
rules (minimum length, exact-prefix key, 5-minute lifetime, an entry readable only once the response that
writes it is ready) and answers with log-normal latency (mean 0.5 s, sigma 0.5 by default).

For each model id and each repetition, one job with the adapter as configured (the first call for a new
prefix goes alone) and one with that warm-up off (all ten first calls go together). The ratio is cache
reads / all input tokens (uncached + cache writes + cache reads), as the job's API output shows it.
Usage: .venv/bin/python bench/bench_claude_cache.py [--companies 150] [--reps 3] [--latency 0.5]
       [--models claude-sonnet-5-5,claude-sonnet-4-6]
Prints one JSON line and a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_process import FakeProcess
from tam.containers import open_services, run_job
from tam.domain.model import Job, JobStatus, JobType, NewCompany, Project
from tam.settings import Settings

API_KEY = "bench-key"
ICP = "B2B SaaS for mid-sized logistics companies in Europe (freight forwarders, carriers, 3PLs), 50-500 employees"


def ratio(usage: dict[str, int]) -> float:
    read = usage.get("claude_cache_read_tokens", 0)
    total = usage.get("claude_input_tokens", 0) + usage.get("claude_cache_write_tokens", 0) + read
    return read / total if total else 0.0


async def one_job(args: argparse.Namespace, url: str, where: str, model: str, warm_first: bool) -> dict[str, Any]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        tam_providers="live",
        tam_store="sqlite",
        tam_sqlite_path=where,
        anthropic_api_key=API_KEY,
        anthropic_base_url=url,
        tam_claude_model=model,
        tam_qualify_concurrency=10,
    )
    async with open_services(settings) as services:
        qualifier: Any = services.vendors.qualifier
        qualifier._warm_first = warm_first  # the knob ClaudeQualifier(warm_cache_first=...) sets
        tag = uuid.uuid4().hex[:8]
        project = await services.projects.add(Project(name=f"cache bench {tag}", icp=ICP))
        companies = [
            NewCompany(
                name=f"Company {i}",
                domain=f"c{i:04d}-{tag}.example.com",
                description=f"Company {i} builds software for freight forwarders and carriers.",
                country="DE",
                employee_range="51,200",
            )
            for i in range(args.companies)
        ]
        await services.companies.add_many(project.id, companies)
        job = await services.jobs.add(Job(project_id=project.id, job_type=JobType.QUALIFY))
        done = await run_job(services, job.id)
    assert done.status is JobStatus.COMPLETED and done.items_done == args.companies, done
    usage = dict(done.usage.counts)
    return {"ratio": ratio(usage), "writes": usage.get("claude_cache_write_tokens", 0), "usage": usage}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--companies", type=int, default=150)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--latency", type=float, default=0.5)
    parser.add_argument("--sigma", type=float, default=0.5)
    parser.add_argument("--models", default="claude-sonnet-5-5")
    args = parser.parse_args()
    models = args.models.split(",")
    result: dict[str, Any] = {
        "bench": "claude_cache",
        "companies": args.companies,
        "concurrency": 10,
        "latency_mean_s": args.latency,
        "reps": args.reps,
    }
    with (
        FakeProcess("anthropic", api_key=API_KEY, latency=args.latency, sigma=args.sigma, seed=5) as fake,
        tempfile.TemporaryDirectory() as tmp,
    ):
        for model in models:
            runs: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
            for rep in range(args.reps):
                for warm in (True, False):
                    where = str(Path(tmp) / f"{model}-{rep}-{warm}.db")
                    runs[warm].append(await one_job(args, fake.url, where, model, warm))
            result[model] = {
                "hit_ratio_median": round(statistics.median(r["ratio"] for r in runs[True]), 4),
                "hit_ratio_all": [round(r["ratio"], 4) for r in runs[True]],
                "hit_ratio_without_warmup_median": round(statistics.median(r["ratio"] for r in runs[False]), 4),
                "cache_writes_tokens_median": statistics.median(r["writes"] for r in runs[True]),
                "cache_writes_tokens_without_warmup_median": statistics.median(r["writes"] for r in runs[False]),
                "usage_last_job": runs[True][-1]["usage"],
            }
    print(json.dumps(result))
    print()
    print(f"{'model':<28}{'hit ratio':>11}{'no warm-up':>12}{'writes':>10}{'writes (no warm-up)':>21}")
    for model in models:
        r = result[model]
        print(
            f"{model:<28}{r['hit_ratio_median']:>11.3f}{r['hit_ratio_without_warmup_median']:>12.3f}"
            f"{r['cache_writes_tokens_median']:>10.0f}{r['cache_writes_tokens_without_warmup_median']:>21.0f}"
        )


if __name__ == "__main__":
    asyncio.run(main())
