"""scripts/services.sh on a fresh machine: nothing answers on 127.0.0.1 (a new network namespace) and the
checkout sits under a directory only root may enter (as /root is). It must start private PostgreSQL and
Redis that a contract test passes against, and leave nothing behind: not when the command succeeds, not
when it is interrupted, not when a server never answers. Needs root (like scripts/test); unshare and ip
are installed by scripts/test: a missing one is an error, never a skip."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
# What a private run names: "started PostgreSQL on 127.0.0.1:P (pid N, in /tmp/tam-services.X)",
# "PostgreSQL (pid N) did not answer ...", "--- last lines of /tmp/tam-services.X/pg.log:".
PID = re.compile(r"pid (\d+)")
PRIVATE_DIR = re.compile(r"(/\S*/tam-services\.\w+)")
_URLS = ("TAM_TEST_DATABASE_URL", "TAM_TEST_REDIS_URL", "DATABASE_URL", "REDIS_URL")


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """The scripts and tests of this checkout, copied under a mode-700 directory."""
    if os.geteuid() != 0:
        pytest.fail("needs root, like scripts/test (PostgreSQL runs as the postgres user, unshare -n)")
    for tool in ("unshare", "ip", "runuser"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: scripts/test installs it (util-linux, iproute2)")
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    root = private / "tam"
    root.mkdir()
    shutil.copy(REPO / "pyproject.toml", root)
    for name in ("scripts", "tests"):
        shutil.copytree(REPO / name, root / name, ignore=shutil.ignore_patterns("__pycache__"))
    denied = subprocess.run(["runuser", "-u", "postgres", "--", "test", "-x", str(root)], check=False)
    assert denied.returncode != 0, "the postgres user can enter the checkout: this would prove nothing"
    return root


def in_fresh_namespace(checkout: Path, command: list[str], **env: str) -> subprocess.Popen[str]:
    """`bash scripts/services.sh COMMAND` in a new network namespace with only loopback up, with no
    server URL in its environment, in its own session (so a Ctrl-C can reach its whole group)."""
    clean = {k: v for k, v in os.environ.items() if k not in _URLS} | env
    up_lo = 'ip link set lo up && exec bash scripts/services.sh "$@"'
    return subprocess.Popen(
        ["unshare", "-n", "--", "bash", "-c", up_lo, "services", *command],
        cwd=checkout,
        env=clean,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def assert_nothing_left(output: str) -> None:
    """Every process the run named has exited and every private directory it named is gone."""
    pids = {int(p) for p in PID.findall(output)}
    dirs = set(PRIVATE_DIR.findall(output))
    assert pids, output
    assert dirs, output
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(Path(f"/proc/{pid}").exists() for pid in pids):
        time.sleep(0.1)  # an exited server may linger a moment as a zombie until init reaps it
    assert not [pid for pid in pids if Path(f"/proc/{pid}").exists()], output
    assert not [d for d in dirs if Path(d).exists()], output
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            text = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # the process exited while we looked
        assert not [d for d in dirs if d in text], f"{cmdline.parent.name}: {text}"


def test_private_servers_come_up_pass_a_contract_test_and_go(checkout: Path) -> None:
    contract = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-p",
        "no:cacheprovider",
        "-n0",  # in one process: a handful of tests
        "tests/contract/test_job_repo.py",
        "tests/contract/test_providers_limiter.py",
        "-k",
        "postgres or redis",
    ]
    run = in_fresh_namespace(checkout, contract)
    output, _ = run.communicate(timeout=300)
    assert run.returncode == 0, output
    assert re.search(r"started PostgreSQL on 127\.0\.0\.1:\d+ \(pid \d+, in /", output), output
    assert re.search(r"started Redis on 127\.0\.0\.1:\d+ \(pid \d+, in /", output), output
    assert re.search(r"\b\d+ passed\b", output), output
    assert not re.search(r"\b(failed|error|skipped)\b", output), output
    assert_nothing_left(output)


def test_ctrl_c_stops_the_private_servers(checkout: Path, tmp_path: Path) -> None:
    # TMPDIR inside the private directory too: the postgres user cannot enter it, so /tmp must be used.
    unreachable = checkout.parent / "tmp"
    unreachable.mkdir()
    ready = tmp_path / "ready"
    waiter = (
        "import pathlib, signal, sys, time; signal.signal(signal.SIGINT, signal.SIG_DFL); "
        "pathlib.Path(sys.argv[1]).touch(); time.sleep(120)"
    )
    run = in_fresh_namespace(checkout, [sys.executable, "-c", waiter, str(ready)], TMPDIR=str(unreachable))
    deadline = time.monotonic() + 120
    while not ready.exists():
        assert run.poll() is None, run.communicate()[0]
        assert time.monotonic() < deadline, "the servers did not come up within 120 s"
        time.sleep(0.1)
    os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C in a terminal does: the whole foreground group
    output, _ = run.communicate(timeout=60)
    assert run.returncode == 130, output
    assert "started PostgreSQL" in output, output
    assert "started Redis" in output, output
    assert str(unreachable) not in output, output
    assert_nothing_left(output)


def test_a_server_that_never_answers_is_an_error_with_its_log_and_is_stopped(checkout: Path) -> None:
    run = in_fresh_namespace(checkout, ["true"], SERVICES_START_TIMEOUT="0")
    output, _ = run.communicate(timeout=120)
    assert run.returncode != 0, output
    assert re.search(r"PostgreSQL \(pid \d+\) did not answer within 0s", output), output
    assert re.search(r"--- last lines of /\S+/pg\.log:", output), output
    assert "started Redis" not in output, output
    assert_nothing_left(output)
