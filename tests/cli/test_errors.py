"""User mistakes: one line on stderr starting `tam: `, a non-zero exit, never a traceback."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.cli.conftest import TAM, Cli

UNKNOWN = "6f1d9a52-0000-4000-8000-000000000000"


def one_line_error(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("tam: ")
    return lines[0]


@pytest.mark.parametrize(
    "args",
    [
        ("companies", "import", "{csv}", "--project", UNKNOWN),
        ("run", "qualify", "--project", UNKNOWN),
        ("export", "contacts", "--project", UNKNOWN, "-o", "{out}"),
        ("jobs", "--project", UNKNOWN),
    ],
)
def test_unknown_project(cli: Cli, tmp_path: Path, args: tuple[str, ...]) -> None:
    source = tmp_path / "c.csv"
    source.write_text("domain\nacme.com\n")
    filled = [a.format(csv=source, out=tmp_path / "out.csv") for a in args]
    assert one_line_error(cli(*filled, check=False)) == f"tam: project {UNKNOWN} not found"
    assert not (tmp_path / "out.csv").exists()


def test_mistakes_are_one_clear_line(cli: Cli, tmp_path: Path) -> None:
    project = cli("projects", "create", "--name", "P", "--icp", "B2B").stdout.strip()

    assert "missing.csv" in one_line_error(cli("companies", "import", "missing.csv", "--project", project, check=False))
    no_domain = tmp_path / "names.csv"
    no_domain.write_text("name,city\nAcme,Paris\n")
    assert "no domain column" in one_line_error(
        cli("companies", "import", str(no_domain), "--project", project, check=False)
    )

    bad_step = one_line_error(cli("run", "enrich", "--project", project, check=False))
    assert "unknown step 'enrich'" in bad_step
    assert "findContacts" in bad_step  # the one name of the step, as every output shows it

    assert "not a valid project id" in one_line_error(cli("run", "qualify", "--project", "42", check=False))
    assert "--project" in one_line_error(cli("run", "qualify", check=False))
    assert "No such command" in one_line_error(cli("frobnicate", check=False))
    assert "unknown companies status" in one_line_error(
        cli(
            "export", "companies", "--project", project, "-o", str(tmp_path / "x.csv"), "--status", "great", check=False
        )
    )
    assert "REDIS_URL" in one_line_error(cli("run", "qualify", "--project", project, "--detach", check=False))


@pytest.mark.parametrize(
    "command",
    [(), ("projects",), ("projects", "create"), ("projects", "list"), ("companies", "import"), ("run",), ("jobs",),
     ("jobs", "cancel"), ("export",)],
)  # fmt: skip
def test_every_command_has_help(cli: Cli, command: tuple[str, ...]) -> None:
    result = cli(*command, "--help")
    assert "Usage" in result.stdout


def test_ctrl_c_cancels_the_job_when_stdin_is_not_a_terminal(cli: Cli) -> None:
    project = cli("projects", "create", "--name", "P", "--icp", "B2B").stdout.strip()
    cli("run", "source-companies", "--project", project)
    env = {**cli.env, "TAM_SANDBOX_LATENCY": "2", "TAM_QUALIFY_CONCURRENCY": "2"}
    proc = subprocess.Popen(
        [TAM, "run", "qualify", "--project", project],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 30
        while not running_qualify(cli, project):
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.1)
        proc.send_signal(signal.SIGINT)
        _out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert "cancelled" in err
    assert "Traceback" not in err
    (job,) = [j for j in cli.rows("tam_job_queue", project) if j["job_type"] == "qualify"]
    assert job["status"] == "cancelled"
    assert job["items_done"] + job["items_failed"] < job["items_total"]


def running_qualify(cli: Cli, project: str) -> bool:
    try:
        jobs = cli.rows("tam_job_queue", project)
    except sqlite3.OperationalError:
        return False
    return any(j["job_type"] == "qualify" and j["status"] == "running" for j in jobs)
