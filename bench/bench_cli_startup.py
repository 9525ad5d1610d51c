"""CLI start-up: wall and CPU time of `tam` processes, and of `tam serve` until /healthz answers.

Each tree is a `src` directory put first on PYTHONPATH (so one venv runs two versions of tam side by
side, their runs interleaved): e.g. the sources of main before a change and of the working tree.

Usage: .venv/bin/python bench/bench_cli_startup.py [--tree before=/tmp/before/src] [--tree after=src] [--runs 10]
Every process runs in a scratch directory on a SQLite store (no REDIS_URL, sandbox providers).
Prints one JSON line and a table of medians (CPU: user + system of the child, from getrusage).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

TAM = [sys.executable, "-c", "from tam.entrypoints.cli import main; main()"]
CASES: dict[str, list[str]] = {
    "import tam.entrypoints.cli": [sys.executable, "-c", "import tam.entrypoints.cli"],
    "tam --help": [*TAM, "--help"],
    "tam projects list (sqlite)": [*TAM, "projects", "list"],
    "import tam.entrypoints.api": [sys.executable, "-c", "import tam.entrypoints.api"],
}


def child_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def timed(argv: list[str], env: dict[str, str], cwd: str) -> tuple[float, float]:
    cpu, started = child_cpu(), time.perf_counter()
    subprocess.run(argv, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started, child_cpu() - cpu


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_ready(env: dict[str, str], cwd: str) -> tuple[float, float]:
    """`tam serve` from exec until /healthz answers 200 (its CPU read from /proc before it is stopped)."""
    port = free_port()
    started = time.perf_counter()
    proc = subprocess.Popen(
        [*TAM, "serve", "--port", str(port)], env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError("tam serve exited before it answered") from None
                time.sleep(0.01)
        wall = time.perf_counter() - started
        fields = Path(f"/proc/{proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        cpu = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime
    finally:
        proc.terminate()
        proc.wait(10)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tree", action="append", help="NAME=PATH of a src directory (default: this checkout)")
    parser.add_argument("--runs", type=int, default=10)
    args = parser.parse_args()
    here = str(Path(__file__).resolve().parent.parent / "src")
    trees = dict(t.split("=", 1) for t in args.tree) if args.tree else {"this": here}
    with tempfile.TemporaryDirectory() as scratch:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("TAM_", "REDIS", "DATABASE", "SUPABASE"))}
        base |= {"TAM_STORE": "sqlite", "TAM_SQLITE_PATH": f"{scratch}/tam.db", "TAM_PROVIDERS": "sandbox"}
        envs = {name: base | {"PYTHONPATH": str(Path(src).resolve())} for name, src in trees.items()}
        first = next(iter(envs.values()))
        subprocess.run([*TAM, "migrate"], env=first, cwd=scratch, check=True, stdout=subprocess.DEVNULL)
        create = ["projects", "create", "--name", "bench", "--icp", "B2B"]
        subprocess.run([*TAM, *create], env=first, cwd=scratch, check=True, stdout=subprocess.DEVNULL)
        samples: dict[tuple[str, str], list[tuple[float, float]]] = {}
        for _ in range(args.runs):  # interleaved, so the machine's load falls on every tree alike
            for name, env in envs.items():
                for case, argv in CASES.items():
                    samples.setdefault((case, name), []).append(timed(argv, env, scratch))
                samples.setdefault(("tam serve until /healthz", name), []).append(serve_ready(env, scratch))
    result: dict[str, Any] = {"bench": "cli_startup", "runs": args.runs, "load": os.getloadavg()[0]}
    for (case, name), runs in samples.items():
        result[f"{case} | {name}"] = {
            "wall_ms": round(1000 * statistics.median(w for w, _ in runs)),
            "cpu_ms": round(1000 * statistics.median(c for _, c in runs)),
        }
    print(json.dumps(result))
    print(f"\nmedians of {args.runs} runs (ms), load average {result['load']:.1f}")
    names = list(trees)
    print(f"{'command':<30}" + "".join(f"{n + ' wall':>14}{n + ' CPU':>14}" for n in names))
    for case in dict.fromkeys(c for c, _ in samples):
        cells = [result[f"{case} | {n}"] for n in names]
        print(f"{case:<30}" + "".join(f"{c['wall_ms']:>14}{c['cpu_ms']:>14}" for c in cells))


if __name__ == "__main__":
    main()
