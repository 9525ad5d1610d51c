"""Deno (from the npm registry, installed on first use) and a `tam serve` subprocess on 127.0.0.1."""

from __future__ import annotations

import fcntl
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
DENO_PREFIX = ROOT / ".services" / "deno"
KEY = "edge-test-key-5f1c2a9b7e"


@pytest.fixture(scope="session")
def deno() -> str:
    """The deno binary; installed with npm when missing (a missing npm is an error, not a skip)."""
    binary = DENO_PREFIX / "node_modules" / ".bin" / "deno"
    DENO_PREFIX.mkdir(parents=True, exist_ok=True)
    # one install at a time: pytest-xdist workers may all get here first on a fresh checkout
    with (DENO_PREFIX / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not binary.exists():
            npm = shutil.which("npm")
            assert npm, "npm is needed to install deno (npm install deno@2)"
            subprocess.run(
                [npm, "install", "--prefix", str(DENO_PREFIX), "--no-audit", "--no-fund", "deno@2"],
                check=True,
                capture_output=True,
                timeout=300,
            )
    subprocess.run([str(binary), "--version"], check=True, capture_output=True, timeout=60)
    return str(binary)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class TamServer:
    url: str
    db: Path
    env: dict[str, str]


@pytest.fixture
def tam_server(tmp_path: Path) -> Iterator[TamServer]:
    """`tam serve` in embedded mode: SQLite in a temp file, sandbox providers, no Redis."""
    port = free_port()
    db = tmp_path / "tam.db"
    env = {k: v for k, v in os.environ.items() if k not in {"REDIS_URL", "DATABASE_URL", "TAM_LOG_FORMAT"}}
    env.update(
        TAM_STORE="sqlite",
        TAM_SQLITE_PATH=str(db),
        TAM_PROVIDERS="sandbox",
        TAM_SANDBOX_LATENCY="0.01",
        TAM_SOURCE_COMPANIES_MAX_RECORDS="20",
        SERVICE_API_KEY=KEY,
    )
    tam = str(Path(sys.executable).parent / "tam")
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen(
        [tam, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=log, stderr=subprocess.STDOUT
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "tam serve did not answer /healthz within 30 s"
            time.sleep(0.1)
        yield TamServer(url, db, env)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
