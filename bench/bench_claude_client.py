"""CPU per Messages call of the ways tam could call Claude, side by side in one run, against the fake
answering at once (in its own process, announcing a rate limit nobody reaches).

- `sdk`: the anthropic SDK on its aiohttp transport, `messages.with_raw_response.create` + `parse()`
  (what ClaudeQualifier did until issue 14);
- `tam`: `tam.adapters.claude_messages.MessagesClient`, what ClaudeQualifier does now (aiohttp, the
  SDK's headers, the body read as plain JSON);
- `aiohttp`: a bare `ClientSession.post` + `json.loads`, the floor of a Python HTTP client here.

Every variant sends the same body, ClaudeQualifier's request for one company (the ~10 KB cached system
prompt and the company), with `--concurrency` calls in flight. Variants alternate within each repetition.
Usage: .venv/bin/python bench/bench_claude_client.py [--calls 2000] [--reps 3] [--concurrency 10] [--uvloop]
Prints one JSON line (medians) and a table: client CPU ms per call, the fake's CPU ms per call, calls/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fake_process import FakeProcess
from tam.adapters.claude import ClaudeQualifier
from tam.adapters.claude_messages import MessagesClient
from tam.domain.model import Company, Project

API_KEY = "bench-key"
FAKE_RPM = 1_000_000
VARIANTS = ("sdk", "tam", "aiohttp")


async def client(
    kind: str, url: str
) -> tuple[Callable[[dict[str, Any]], Awaitable[Any]], Callable[[], Awaitable[Any]]]:
    if kind == "sdk":
        import anthropic

        sdk = anthropic.AsyncAnthropic(
            api_key=API_KEY, base_url=url, max_retries=0, http_client=anthropic.DefaultAioHttpClient()
        )

        async def via_sdk(params: dict[str, Any]) -> Any:
            raw = await sdk.messages.with_raw_response.create(**params)
            return await raw.parse()

        return via_sdk, sdk.close
    if kind == "tam":
        messages = await MessagesClient.open(API_KEY, url, 60.0, 5.0)
        return messages.create, messages.aclose
    import aiohttp

    session = aiohttp.ClientSession()
    headers = {"x-api-key": API_KEY, "anthropic-version": "2023-06-01", "content-type": "application/json"}

    async def bare(params: dict[str, Any]) -> Any:
        async with session.post(url + "/v1/messages", data=json.dumps(params).encode(), headers=headers) as r:
            return json.loads(await r.read())

    return bare, session.close


async def one_run(kind: str, url: str, params: dict[str, Any], calls: int, concurrency: int) -> tuple[float, float]:
    send, close = await client(kind, url)
    try:

        async def worker(n: int) -> None:
            for _ in range(n):
                await send(params)

        await worker(20)  # warm: connections, first-use imports
        started, cpu = time.perf_counter(), time.process_time()
        await asyncio.gather(*(worker(calls // concurrency) for _ in range(concurrency)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
    finally:
        await close()
    return calls / elapsed, cpu / calls * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--uvloop", action="store_true", help="run the clients on uvloop's event loop")
    args = parser.parse_args()
    qualifier = ClaudeQualifier(api_key=API_KEY, model="claude-sonnet-5-5")
    project = Project(name="bench", icp="B2B software companies in Europe, 50-500 employees")
    company = Company(
        id=uuid.uuid4(),
        project_id=project.id,
        name="Northwind",
        domain="northwind.example.com",
        description="Route planning.",
    )
    params = qualifier.request_params(project, company)
    runner: Callable[[Any], Any] = asyncio.run
    if args.uvloop:
        import uvloop

        runner = uvloop.run

    runs: dict[str, list[dict[str, float]]] = {kind: [] for kind in VARIANTS}
    with FakeProcess("anthropic", api_key=API_KEY, latency=0.0, rate_limit=FAKE_RPM) as fake:
        for _ in range(args.reps):
            for kind in VARIANTS:
                fake_cpu = fake.stats()["cpu_s"]
                rate, cpu = runner(one_run(kind, fake.url, params, args.calls, args.concurrency))
                fake_ms = (fake.stats()["cpu_s"] - fake_cpu) / (args.calls + 20) * 1000
                runs[kind].append({"calls_per_s": rate, "client_cpu_ms": cpu, "fake_cpu_ms": fake_ms})
                print(f"{kind}: {runs[kind][-1]}", file=sys.stderr)

    result: dict[str, Any] = {"bench": "claude_client", "calls": args.calls, "reps": args.reps, "uvloop": args.uvloop}
    for kind in VARIANTS:
        result[kind] = {key: round(statistics.median(r[key] for r in runs[kind]), 3) for key in runs[kind][0]}
    print(json.dumps(result))
    print()
    print(f"{'client':>10}{'client CPU ms/call':>20}{'fake CPU ms/call':>18}{'calls/s':>10}")
    for kind in VARIANTS:
        r = result[kind]
        print(f"{kind:>10}{r['client_cpu_ms']:>20.3f}{r['fake_cpu_ms']:>18.3f}{r['calls_per_s']:>10.0f}")


if __name__ == "__main__":
    main()
