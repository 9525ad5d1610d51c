"""/metrics under PROMETHEUS_MULTIPROC_DIR: a process that exits, or is killed in the middle of a
call, no longer counts in `tam_provider_calls_in_flight`; its counters stay (they are history)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tam.adapters.metrics import PrometheusCallObserver

# A process on the same directory with two Claude calls in flight and one finished, until killed.
CALLING = """
from tam.adapters.metrics import PrometheusCallObserver
import sys, time
observer = PrometheusCallObserver(sys.argv[1])
observer.call_started("claude"); observer.call_started("claude"); observer.call_started("claude")
observer.call_finished("claude", 0.1, "ok")
print("calling", flush=True)
time.sleep(600)
"""


@pytest.fixture
def callers(tmp_path: Path) -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for _ in range(2):
        proc = subprocess.Popen(
            [sys.executable, "-c", CALLING, str(tmp_path)], env=env, stdout=subprocess.PIPE, text=True
        )
        started.append(proc)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "calling"
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def sample(observer: PrometheusCallObserver, name: str) -> float:
    return sum(
        s.value
        for family in observer.provider_metrics()
        for s in family.samples
        if s.name == name and s.labels.get("provider") == "claude"
    )


def test_a_killed_process_drops_out_of_calls_in_flight(tmp_path: Path, callers: list[subprocess.Popen[str]]) -> None:
    scraper = PrometheusCallObserver(str(tmp_path))
    assert sample(scraper, "tam_provider_calls_in_flight") == 4
    assert sample(scraper, "tam_provider_call_seconds_count") == 2

    os.kill(callers[0].pid, signal.SIGKILL)  # mid-call, no chance to clean up
    callers[0].wait()
    assert sample(scraper, "tam_provider_calls_in_flight") == 2
    assert sample(scraper, "tam_provider_call_seconds_count") == 2, "finished calls stay counted"

    callers[1].terminate()
    callers[1].wait()
    assert sample(scraper, "tam_provider_calls_in_flight") == 0
    assert not list(tmp_path.glob("gauge_live*")), "the dead processes' live gauge files are removed"
