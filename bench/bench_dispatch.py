"""Dispatch API benchmark (issue 6, benchmark 3): `POST /api/tam/run` on distinct pre-created jobs.

One `tam serve` process (uvicorn, one process) with TAM_STORE=postgres on a scratch database and
REDIS_URL on a private Redis database, so every dispatch claims a task id in PostgreSQL and enqueues a
Dramatiq message on Redis; no worker runs during the load part. The load generator is `wrk` (Debian's
package; one thread, C keep-alive connections on loopback, a Lua script giving every request a job of
its own, each in a project of its own), or with `--client httpx` this process (an httpx async client,
which spends ~4 ms of CPU per request itself, so it measures the client more than the server). Side by
side, `GET /healthz` under the same load gives the floor of the stack (uvicorn + Starlette) without the
database and Redis; the table gives its ratio to `/run` per repetition, and the CPU per request of the
server process (all its threads), of the PostgreSQL backends serving it, and of the client (/proc).
Then, with a `tam worker` running (fake Claude answering at once, in its own process), jobs of 20
companies are dispatched one at a time through the API, and this process samples the job row every
2 ms for the first progress the worker writes (`heartbeat_at` set: status running, "Qualified 0 of 20").
Side by side for that part: an idle Dramatiq consumer polls Redis with a backoff up to the worker
timeout (`dramatiq_worker_timeout`, Dramatiq's default 1000 ms; `tam worker` sets 100 ms).

Usage: .venv/bin/python bench/bench_dispatch.py [--seconds 15] [--connections 32] [--reps 3] [--progress-jobs 30]
Prints one JSON line (medians over repetitions) and a table.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import asyncpg
import httpx

from fake_process import FakeProcess
from worker_process import (
    TAM,
    WorkerProcess,
    add_server_options,
    cpu_seconds,
    create_database,
    drop_database,
    flush_redis,
    migrate,
    redis_url,
)

API_KEY = "bench-key"
HEADERS = {"x-api-key": API_KEY}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServeProcess:
    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(TAM), "serve", "--port", str(self.port)],
                env={**os.environ, **env, "SERVICE_API_KEY": API_KEY},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tam serve did not start:\n{log.read_text()[-2000:]}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


async def create_jobs(db_url: str, n: int, companies: int = 0) -> list[tuple[str, str]]:
    """n pending qualify jobs, each in a project of its own (one active job per project and type is the
    rule: a second one is refused with 409), written straight with SQL (fast): (job id, project id)."""
    conn = await asyncpg.connect(db_url)
    try:
        projects = [
            r["id"]
            for r in await conn.fetch(
                "insert into tam_projects (name, icp) select 'bench', 'B2B software' from generate_series(1, $1)"
                " returning id",
                n,
            )
        ]
        if companies:
            await conn.executemany(
                """insert into tam_companies (project_id, name, domain)
                   select $1, 'C' || i, 'c' || i || '-' || $2 || '.example.com' from generate_series(1, $3) i""",
                [(project, uuid.uuid4().hex[:8], companies) for project in projects],
            )
        rows = await conn.fetch(
            """insert into tam_job_queue (project_id, job_type) select p, 'qualify' from unnest($1::uuid[]) p
               returning id, project_id""",
            projects,
        )
    finally:
        await conn.close()
    return [(str(r["id"]), str(r["project_id"])) for r in rows]


async def backends_cpu(db_url: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend serving the scratch database (the server's pool;
    this bench's own connection left out), read from /proc: PostgreSQL runs on this machine."""
    conn = await asyncpg.connect(db_url)
    try:
        pids = await conn.fetch(
            """select pid from pg_stat_activity where datname = current_database() and pid <> pg_backend_pid()
                 and backend_type = 'client backend'"""  # not autovacuum, which the bulk inserts wake up
        )
    finally:
        await conn.close()
    return {r["pid"]: cpu_seconds(r["pid"]) for r in pids}


WRK_SCRIPT = """
local ids = {}
local n, next_id, thread_id, threads = 0, 0, 0, 1
function setup(thread)
  thread:set("tid", n); n = n + 1
end
function init(args)
  thread_id, threads = tonumber(tid), tonumber(args[2])
  local i = 0
  for line in io.lines(args[1]) do
    if i % threads == thread_id then ids[#ids + 1] = line end
    i = i + 1
  end
end
function request()
  next_id = next_id + 1
  local job = ids[next_id]
  if job == nil then return wrk.format("GET", "/ran-out-of-jobs") end
  local job_id, project_id = job:match("(%S+) (%S+)")
  local body = '{"jobId":"' .. job_id .. '","jobType":"qualify","projectId":"' .. project_id .. '"}'
  return wrk.format("POST", "/api/tam/run", {["content-type"] = "application/json", ["x-api-key"] = "KEY"}, body)
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('WRK {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"errors": %d}\\n', summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect + e.read + e.write + e.status + e.timeout))
end
"""


def wrk_load(
    url: str, path: str, jobs: list[tuple[str, str]] | None, seconds: float, conns: int, tmp: Path
) -> dict[str, Any]:
    script = WRK_SCRIPT.replace("KEY", API_KEY)
    if jobs is None:  # GET the path; only the summary part of the script
        script = script[script.index("function done") :]
    (tmp / "load.lua").write_text(script)
    ids = tmp / "jobs.txt"
    ids.write_text("".join(f"{job_id} {project_id}\n" for job_id, project_id in jobs or []))
    argv = ["wrk", "-t1", f"-c{conns}", f"-d{int(seconds)}s", "--timeout", "10s", "-s", str(tmp / "load.lua")]
    argv += [url + path, "--", str(ids), "1"]
    before = os.times()
    out = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
    after = os.times()
    line = next(x for x in out.splitlines() if x.startswith("WRK "))
    r = json.loads(line[4:])
    cpu = (after.children_user + after.children_system) - (before.children_user + before.children_system)
    return {
        "requests_per_s": r["requests"] / (r["duration_us"] / 1e6),
        "p50_ms": r["p50_us"] / 1000,
        "p99_ms": r["p99_us"] / 1000,
        "requests": r["requests"],
        "errors": r["errors"],
        "error_kinds": {},
        "client_cpu_ms_per_request": cpu / max(r["requests"], 1) * 1000,
    }


async def load(url: str, path: str, jobs: list[tuple[str, str]] | None, seconds: float, conns: int) -> dict[str, Any]:
    latencies: list[float] = []
    errors: dict[str, int] = {}
    queue = iter(jobs) if jobs is not None else None
    limits = httpx.Limits(max_connections=conns, max_keepalive_connections=conns)
    async with httpx.AsyncClient(base_url=url, headers=HEADERS, limits=limits, timeout=10) as client:
        stop_at = time.perf_counter() + seconds

        async def one_connection() -> None:
            while time.perf_counter() < stop_at:
                if queue is not None:
                    job = next(queue, None)
                    if job is None:
                        errors["ran out of jobs"] = 1
                        return
                    body = {"jobId": job[0], "jobType": "qualify", "projectId": job[1]}
                    began = time.perf_counter()
                    try:
                        response = await client.post(path, json=body)
                    except httpx.HTTPError as exc:
                        errors[type(exc).__name__] = errors.get(type(exc).__name__, 0) + 1
                        continue
                else:
                    began = time.perf_counter()
                    response = await client.get(path)
                latencies.append(time.perf_counter() - began)
                if response.status_code != 200:
                    errors[str(response.status_code)] = errors.get(str(response.status_code), 0) + 1

        cpu, started = time.process_time(), time.perf_counter()
        await asyncio.gather(*(one_connection() for _ in range(conns)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    latencies.sort()
    return {
        "requests_per_s": len(latencies) / elapsed,
        "p50_ms": latencies[len(latencies) // 2] * 1000,
        "p99_ms": latencies[int(len(latencies) * 0.99)] * 1000,
        "requests": len(latencies),
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "client_cpu_ms_per_request": cpu / max(len(latencies), 1) * 1000,
    }


async def first_progress(url: str, db_url: str, n_jobs: int) -> list[float]:
    """Dispatch jobs one at a time; the time from sending the POST to the worker's first progress write."""
    jobs = []
    for _ in range(n_jobs):
        jobs += await create_jobs(db_url, 1, companies=20)
    times = []
    conn = await asyncpg.connect(db_url)
    async with httpx.AsyncClient(base_url=url, headers=HEADERS) as client:
        try:
            for job_id, project_id in jobs:
                began = time.perf_counter()
                body = {"jobId": job_id, "jobType": "qualify", "projectId": project_id}
                response = await client.post("/api/tam/run", json=body)
                assert response.status_code == 200, response.text
                deadline = time.monotonic() + 30
                while not await conn.fetchval(
                    "select heartbeat_at is not null from tam_job_queue where id = $1", uuid.UUID(job_id)
                ):
                    if time.monotonic() > deadline:
                        raise RuntimeError(f"no progress for job {job_id} within 30 s")
                    await asyncio.sleep(0.002)
                times.append(time.perf_counter() - began)
                await asyncio.sleep(0.3)  # let the job finish: the next dispatch finds an idle worker
        finally:
            await conn.close()
    return times


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--progress-jobs", type=int, default=30)
    parser.add_argument("--client", choices=("wrk", "httpx"), default="wrk" if shutil.which("wrk") else "httpx")
    parser.add_argument("--idle-poll-ms", default="1000,100", help="dramatiq_worker_timeout values, side by side")
    add_server_options(parser, redis_db=5)
    args = parser.parse_args()

    rurl = redis_url(args.redis, args.redis_db)
    flush_redis(rurl)
    db_url = await create_database(args.server)
    runs: dict[str, list[dict[str, Any]]] = {"run": [], "healthz": []}
    progress: dict[str, list[float]] = {}
    try:
        migrate({"TAM_STORE": "postgres", "DATABASE_URL": db_url})
        env = {"TAM_STORE": "postgres", "DATABASE_URL": db_url, "REDIS_URL": rurl, "TAM_PROVIDERS": "live"}
        with tempfile.TemporaryDirectory() as tmp:
            serve = ServeProcess(env, Path(tmp) / "serve.log")
            try:
                tmpdir = Path(tmp)

                async def measure(path: str, jobs: list[tuple[str, str]] | None, seconds: float) -> dict[str, Any]:
                    cpu, pg_before = cpu_seconds(serve.proc.pid), await backends_cpu(db_url)
                    if args.client == "wrk":
                        r = wrk_load(serve.url, path, jobs, seconds, args.connections, tmpdir)
                    else:
                        r = await load(serve.url, path, jobs, seconds, args.connections)
                    cpu, pg_after = cpu_seconds(serve.proc.pid) - cpu, await backends_cpu(db_url)
                    pg = sum(c - pg_before.get(pid, 0.0) for pid, c in pg_after.items())
                    r["server_cpu_ms_per_request"] = cpu / max(r["requests"], 1) * 1000
                    r["postgres_cpu_ms_per_request"] = pg / max(r["requests"], 1) * 1000
                    return r

                await measure("/api/tam/run", await create_jobs(db_url, 6000), 2)  # warm up
                for _ in range(args.reps):
                    jobs = await create_jobs(db_url, int(args.seconds * 3000))
                    runs["run"].append(await measure("/api/tam/run", jobs, args.seconds))
                    runs["healthz"].append(await measure("/healthz", None, args.seconds))
                    print(runs["run"][-1], runs["healthz"][-1], file=sys.stderr)
                flush_redis(rurl)  # the load part's messages; no worker should run them
                with FakeProcess("anthropic", api_key=API_KEY, latency=0.0) as fake:
                    for poll in args.idle_poll_ms.split(","):
                        worker_env = {
                            **env,
                            "ANTHROPIC_API_KEY": API_KEY,
                            "ANTHROPIC_BASE_URL": fake.url,
                            "dramatiq_worker_timeout": poll,
                        }
                        worker = WorkerProcess(worker_env, Path(tmp) / f"worker{poll}.log", processes=1, threads=4)
                        try:
                            worker.wait_ready()
                            await first_progress(serve.url, db_url, 3)  # warm up
                            progress[poll] = await first_progress(serve.url, db_url, args.progress_jobs)
                        finally:
                            worker.stop()
            finally:
                serve.stop()
    finally:
        flush_redis(rurl)
        await drop_database(args.server, db_url)

    result: dict[str, Any] = {
        "bench": "dispatch",
        "seconds": args.seconds,
        "connections": args.connections,
        "client": args.client,
        "reps": args.reps,
    }
    for kind in ("run", "healthz"):
        keys = (
            "requests_per_s",
            "p50_ms",
            "p99_ms",
            "requests",
            "errors",
            "server_cpu_ms_per_request",
            "postgres_cpu_ms_per_request",
            "client_cpu_ms_per_request",
        )
        result[kind] = {key: round(statistics.median(r[key] for r in runs[kind]), 2) for key in keys}
        result[kind]["errors_all"] = [r["errors"] for r in runs[kind]]
        result[kind]["requests_per_s_all"] = [round(r["requests_per_s"]) for r in runs[kind]]
    # The floor of the stack over dispatch, per repetition (each pair ran back to back), then the median.
    pairs = list(zip(runs["run"], runs["healthz"], strict=True))
    result["healthz_over_run"] = {
        "requests_per_s": round(
            statistics.median(h["requests_per_s"] / r["requests_per_s"] for r, h in pairs),
            2,
        ),
        "p99": round(statistics.median(r["p99_ms"] / h["p99_ms"] for r, h in pairs), 2),
    }
    for poll, times in progress.items():
        times.sort()
        result[f"first_progress_poll{poll}"] = {
            "jobs": len(times),
            "p50_ms": round(statistics.median(times) * 1000, 1),
            "p90_ms": round(times[int(len(times) * 0.9)] * 1000, 1),
            "max_ms": round(times[-1] * 1000, 1),
        }
    print(json.dumps(result))
    print()
    print(
        f"{'route':<20}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'server CPU ms/req':>19}"
        f"{'PostgreSQL CPU':>16}{'client CPU ms/req':>19}"
    )
    for kind, route in (("run", "POST /api/tam/run"), ("healthz", "GET /healthz")):
        r = result[kind]
        print(
            f"{route:<20}{r['requests_per_s']:>8.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['errors']:>8.0f}"
            f"{r['server_cpu_ms_per_request']:>19.3f}{r['postgres_cpu_ms_per_request']:>16.3f}"
            f"{r['client_cpu_ms_per_request']:>19.3f}"
        )
    ratio = result["healthz_over_run"]
    print(
        f"/healthz over /run (median of the per-repetition ratios): requests/s {ratio['requests_per_s']:.2f}x, "
        f"/run p99 over /healthz p99 {ratio['p99']:.2f}x"
    )
    for poll in progress:
        p = result[f"first_progress_poll{poll}"]
        print(
            f"dispatch -> first progress, idle poll <= {poll} ms ({p['jobs']} jobs): p50 {p['p50_ms']} ms, "
            f"p90 {p['p90_ms']} ms, max {p['max_ms']} ms"
        )
    print(
        "targets: >= 1,000 requests/s and p99 <= 25 ms, or /run within 1.5x of /healthz; no error;"
        " first progress p50 <= 100 ms"
    )


if __name__ == "__main__":
    asyncio.run(main())
