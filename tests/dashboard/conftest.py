"""`tam serve` in a subprocess (SQLite in a temporary file, sandbox providers, no Redis) and Debian's
headless Chromium driven by Playwright. No browser is downloaded: a missing /usr/bin/chromium is an
error (scripts/test installs Debian's package), never a skip."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright

TAM = str(Path(sys.executable).parent / "tam")
CHROMIUM = "/usr/bin/chromium"
# Without the background-networking flags Chromium keeps dialling Google on this closed network.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
KEY = "dashboard-test-key-0123456789"


@dataclass
class Server:
    url: str
    api: httpx.Client


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server_env() -> dict[str, str]:
    """Settings a test module adds to the server's environment (override the fixture in the module)."""
    return {}


@pytest.fixture
def server(tmp_path: Path, server_env: dict[str, str]) -> Iterator[Server]:
    with serve(tmp_path, server_env) as running:
        yield running


@contextlib.contextmanager
def serve(tmp_path: Path, server_env: dict[str, str]) -> Iterator[Server]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAM_") and k not in {"REDIS_URL", "DATABASE_URL"}}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        TAM_STORE="sqlite",
        TAM_SQLITE_PATH=str(tmp_path / "tam.db"),
        TAM_PROVIDERS="sandbox",
        TAM_SANDBOX_LATENCY="0.2",
        # One call at a time, so that 40 companies take about 8 s: long enough to watch and cancel.
        TAM_QUALIFY_CONCURRENCY="1",
        TAM_FIND_CONTACTS_CONCURRENCY="1",
        TAM_FIND_CONTACTS_ENRICH_CONCURRENCY="2",
        SERVICE_API_KEY=KEY,
    )
    env.update(server_env)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with (tmp_path / "serve.log").open("w") as log:
        process = subprocess.Popen(
            [TAM, "serve", "--host", "127.0.0.1", "--port", str(port)], env=env, stdout=log, stderr=log
        )
    try:
        with httpx.Client(base_url=url, headers={"x-api-key": KEY}, timeout=10) as api:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if api.get("/healthz").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                assert process.poll() is None, (tmp_path / "serve.log").read_text()
                assert time.monotonic() < deadline, "tam serve did not answer within 30 s"
                time.sleep(0.1)
            yield Server(url, api)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")  # not longer: its event loop counts as running while it lives
def browser() -> Iterator[Browser]:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: install Debian's chromium (scripts/test does)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def console_errors(page: Page) -> list[str]:
    """Collects the page's console errors and uncaught exceptions from now on (assert it stays empty)."""
    errors: list[str] = []
    page.on("console", lambda m: errors.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(f"exception: {e}"))
    return errors
