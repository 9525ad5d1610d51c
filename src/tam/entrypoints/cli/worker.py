"""`tam worker`: Dramatiq worker processes for the jobs the API enqueues on Redis."""

from __future__ import annotations

import os
import sys

import typer

from tam.settings import Settings

# How long a SIGTERMed worker lets in-flight jobs run before it exits; their messages then go back to
# the queue and the next delivery resumes them (finished items are never redone).
SHUTDOWN_TIMEOUT_MS = 30_000


def register(app: typer.Typer) -> None:
    @app.command()
    def worker(
        processes: int = typer.Option(1, min=1, max=64, help="Worker processes."),
        threads: int = typer.Option(4, min=1, max=64, help="Jobs at once per process (each on one event loop)."),
    ) -> None:
        """Run jobs from Redis (REDIS_URL) until stopped with SIGTERM or Ctrl-C."""
        if Settings().redis_url is None:
            print("tam: REDIS_URL is not set; without it `tam serve` runs jobs itself", file=sys.stderr)
            raise typer.Exit(1)
        argv = [
            sys.executable,
            "-m",
            "dramatiq",
            "tam.entrypoints.worker:setup",
            "--processes",
            str(processes),
            "--threads",
            str(threads),
            "--worker-shutdown-timeout",
            str(SHUTDOWN_TIMEOUT_MS),
        ]
        sys.stdout.flush()
        sys.stderr.flush()
        os.execv(sys.executable, argv)
