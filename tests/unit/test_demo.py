"""`tam demo` as a user runs it: the installed command, in its own process."""

from __future__ import annotations

import os
import subprocess
import sys

TAM = os.path.join(os.path.dirname(sys.executable), "tam")


def tam(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "160"}
    return subprocess.run([TAM, *args], capture_output=True, text=True, timeout=120, check=False, env=env)


def test_demo_runs_all_five_steps_and_prints_a_summary() -> None:
    result = tam("demo", "--companies", "40", "--latency", "0.01", "--fault-rate", "0.05")
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "Summary" in out
    for label in ("sourceCompanies", "qualify", "findContacts", "checkLinkedin", "refineDiscolike"):
        assert label in out
    assert out.count("completed") >= 5
    assert "Added 40 new companies" in out


def test_bad_option_is_one_clear_error_without_traceback() -> None:
    result = tam("demo", "--companies", "0")
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "--companies" in result.stderr


def test_tam_command_has_help() -> None:
    result = tam("--help")
    assert result.returncode == 0
    assert "demo" in result.stdout
