"""What the worker benchmarks share: a scratch PostgreSQL database migrated with `tam migrate`, a
private Redis database, and `tam worker` processes (each in a session of its own, stopped by SIGTERM
to the dramatiq master's PID only), with their peak RSS read from /proc.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

TAM = Path(sys.executable).with_name("tam")


async def create_database(server: str) -> str:
    name = f"tam_bench_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'create database "{name}"')
    finally:
        await admin.close()
    return urlunsplit(urlsplit(server)._replace(path="/" + name))


async def drop_database(server: str, url: str) -> None:
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'drop database if exists "{urlsplit(url).path.lstrip("/")}" with (force)')
    finally:
        await admin.close()


def migrate(env: dict[str, str]) -> None:
    subprocess.run([str(TAM), "migrate"], env={**os.environ, **env}, check=True, capture_output=True)


def redis_url(base: str, db: int) -> str:
    return urlunsplit(urlsplit(base)._replace(path=f"/{db}"))


def flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


def status_kb(pid: int, field: str) -> int:
    """A /proc/<pid>/status field in kB (VmHWM: the peak resident set size over the process's life)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (/proc/<pid>/stat)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class WorkerProcess:
    """`tam worker --processes P --threads T`: its supervisor, P dramatiq masters, and one child under each."""

    def __init__(self, env: dict[str, str], log: Path, processes: int = 1, threads: int = 1) -> None:
        self.log = log
        with log.open("ab") as out:
            self.proc = subprocess.Popen(
                [str(TAM), "worker", "--processes", str(processes), "--threads", str(threads)],
                env={**os.environ, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.processes = processes

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while self.log.read_bytes().count(b"ready for action") < self.processes:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"tam worker did not start; see {self.log}:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.05)

    def masters(self) -> list[int]:
        return children(self.proc.pid)

    def workers(self) -> list[int]:
        """The PIDs of the processes that run jobs (each dramatiq master's child)."""
        return [child for master in self.masters() for child in children(master)]

    def cpu_seconds(self) -> float:
        return sum(cpu_seconds(pid) for pid in self.workers())

    def peak_rss_mb(self) -> float:
        """The largest peak RSS among the job-running processes."""
        return max((status_kb(pid, "VmHWM") for pid in self.workers()), default=0) / 1024

    def master_peak_rss_mb(self) -> float:
        return max((status_kb(pid, "VmHWM") for pid in [self.proc.pid, *self.masters()]), default=0) / 1024

    def stop(self, timeout: float = 40) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)  # to the supervisor only: it forwards it down
            try:
                self.proc.wait(timeout=timeout)
                return
            except subprocess.TimeoutExpired:
                pass
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()


def add_server_options(parser: argparse.ArgumentParser, redis_db: int) -> None:
    """--server, --redis and --redis-db, as every worker benchmark takes them (each its own Redis db)."""
    parser.add_argument(
        "--server",
        default=os.environ.get("TAM_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"),
        help="a PostgreSQL server where a scratch database may be created (and is dropped after)",
    )
    parser.add_argument("--redis", default=os.environ.get("TAM_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"))
    parser.add_argument("--redis-db", type=int, default=redis_db, help="a Redis database of its own (flushed)")
