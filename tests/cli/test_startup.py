"""Startup that tells the truth: a bad variable is one line naming it and its value, exit 2, before
anything claims to serve; `tam serve` with PostgreSQL and Redis down still answers /healthz, /readyz
says which is down, and both come back without a restart. The servers go away and return through
TCP forwarders to the shared ones."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from tam.settings import ConfigurationError, load_settings
from tests.support.tcp_proxy import TcpProxy, free_port

TAM = str(Path(sys.executable).parent / "tam")
KEY = "startup-key-0123456789"


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TAM_") and k not in {"REDIS_URL", "DATABASE_URL"}}
    env.update(TAM_LOG_FORMAT="json", **extra)
    return env


BAD = [
    ({"TAM_STORE": "mongo"}, "TAM_STORE='mongo'"),
    ({"TAM_STORE": "postgres"}, "DATABASE_URL"),
    ({"TAM_QUALIFY_CONCURRENCY": "lots"}, "TAM_QUALIFY_CONCURRENCY='lots'"),
    ({"TAM_STORE": "postgres", "DATABASE_URL": "mysql://db/x"}, "DATABASE_URL must start with postgresql://"),
    ({"REDIS_URL": "localhost:6379"}, "REDIS_URL must start with redis://"),
]


@pytest.mark.parametrize(("env", "named"), BAD)
def test_each_bad_variable_is_named_with_its_value(env: dict[str, str], named: str) -> None:
    with pytest.MonkeyPatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("TAM_") or k in {"REDIS_URL", "DATABASE_URL"}]:
            patch.delenv(key)
        for key, value in env.items():
            patch.setenv(key, value)
        with pytest.raises(ConfigurationError) as caught:
            load_settings(_env_file=None)
    assert named in str(caught.value)


# The same check in every command, before anything else: one process each for the serving ones.
@pytest.mark.parametrize(
    ("command", "env", "named"),
    [(["projects", "list"], *BAD[0]), (["serve", "--port", "1"], *BAD[1]), (["worker"], *BAD[3])],
)
def test_a_bad_variable_is_one_line_naming_it_and_exit_2(
    tmp_path: Path, command: list[str], env: dict[str, str], named: str
) -> None:
    result = subprocess.run(
        [TAM, *command], env=clean_env(**env), cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("tam: invalid configuration: ")
    assert named in result.stderr
    assert "serving" not in result.stderr


def test_a_secret_variable_is_named_but_its_value_never_shown() -> None:
    with pytest.raises(ConfigurationError) as caught:
        load_settings(_env_file=None, tam_store="postgres", database_url="mysql://user:hunter2-secret@db/x")
    assert "DATABASE_URL" in str(caught.value) and "hunter2" not in str(caught.value)
    with pytest.raises(ConfigurationError) as caught:
        load_settings(_env_file=None, anthropic_api_key=["sk-ant-not-a-string"])
    assert "ANTHROPIC_API_KEY" in str(caught.value) and "sk-ant" not in str(caught.value)


@pytest.fixture
def proxies(migrated_database_url: str, redis_server_url: str) -> Iterator[tuple[TcpProxy, TcpProxy]]:
    pg, redis = urlsplit(migrated_database_url), urlsplit(redis_server_url)
    made = (TcpProxy((pg.hostname or "", pg.port or 5432)), TcpProxy((redis.hostname or "", redis.port or 6379)))
    yield made
    for proxy in made:
        proxy.close()


def via(url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(url)
    netloc = parts.netloc.rsplit("@", 1)
    host = f"127.0.0.1:{proxy.port}"
    return urlunsplit(parts._replace(netloc=f"{netloc[0]}@{host}" if len(netloc) == 2 else host))


def poll(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = check()
        except httpx.TransportError:
            value = None
        if value:
            return value
        assert time.monotonic() < deadline, f"{what} not seen within {timeout} s"
        time.sleep(0.1)


def test_serve_answers_with_the_database_and_redis_down_and_recovers(
    tmp_path: Path, proxies: tuple[TcpProxy, TcpProxy], migrated_database_url: str, redis_server_url: str
) -> None:
    pg, redis = proxies  # both closed: nothing listens on their ports yet
    port = free_port()
    env = clean_env(
        TAM_STORE="postgres",
        DATABASE_URL=via(migrated_database_url, pg),
        REDIS_URL=via(redis_server_url, redis),
        SERVICE_API_KEY=KEY,
    )
    log = tmp_path / "serve.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [TAM, "serve", "--port", str(port)], env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT
        )
    base = f"http://127.0.0.1:{port}"
    auth = {"x-api-key": KEY}
    try:
        health = poll(lambda: httpx.get(f"{base}/healthz", timeout=5), "healthz")
        assert health.status_code == 200
        assert "serving on" in log.read_text()

        down = httpx.get(f"{base}/readyz", headers=auth, timeout=30)
        assert down.status_code == 503
        assert "database unreachable" in down.json()["error"]
        assert "Redis" in down.json()["error"]
        assert httpx.get(f"{base}/api/tam/jobs", headers=auth, timeout=30).status_code == 503

        pg.open()
        half = poll(
            lambda: (
                (r := httpx.get(f"{base}/readyz", headers=auth, timeout=30)).status_code == 503
                and "database" not in r.json()["error"]
                and r
            ),
            "the database back",
        )
        assert "Redis" in half.json()["error"]

        redis.open()
        ready = poll(
            lambda: (r := httpx.get(f"{base}/readyz", headers=auth, timeout=30)).status_code == 200 and r, "ready"
        )
        assert ready.json()["database"] == "ok" and ready.json()["broker"] == "ok"
        created = httpx.post(f"{base}/api/tam/projects", headers=auth, json={"name": "Back", "icp": "x"}, timeout=30)
        assert created.status_code == 201, created.text
        assert proc.poll() is None
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    text = log.read_text()
    assert "Traceback" not in text, text
    lines = [json.loads(line) for line in text.splitlines()]  # every line JSON, tam's own messages too
    assert any(line["event"].startswith("serving on http://127.0.0.1:") for line in lines)
