"""`tam worker`: Dramatiq worker processes for the jobs the API enqueues on Redis."""

from __future__ import annotations

import os
import sys

import typer

from tam.entrypoints.cli.session import load_settings

# How long a SIGTERMed worker lets in-flight jobs run before it exits; their messages then go back to
# the queue and the next delivery resumes them (finished items are never redone).
SHUTDOWN_TIMEOUT_MS = 30_000
# An idle Dramatiq consumer polls Redis with a growing backoff up to the worker timeout (Dramatiq's
# default 1000 ms), so a job dispatched to an idle worker waited ~0.5 s on average before it started.
# 100 ms: a job starts within ~0.1 s, for about 10 cheap Redis fetches a second per idle process.
IDLE_POLL_MS = 100


def register(app: typer.Typer) -> None:
    @app.command()
    def worker(
        processes: int = typer.Option(1, min=1, max=64, help="Worker processes."),
        threads: int = typer.Option(4, min=1, max=64, help="Jobs at once per process (each on one event loop)."),
    ) -> None:
        """Run jobs from Redis (REDIS_URL) until stopped with SIGTERM or Ctrl-C."""
        from tam.entrypoints.worker.supervisor import Supervisor, redis_problem

        url = load_settings().redis_url
        if url is None:
            print("tam: REDIS_URL is not set; without it `tam serve` runs jobs itself", file=sys.stderr)
            raise typer.Exit(1)
        problem = redis_problem(url.get_secret_value())
        if problem is not None:
            print(f"tam: cannot reach Redis at REDIS_URL ({problem}); is it running?", file=sys.stderr)
            raise typer.Exit(1)
        argv = [
            sys.executable,
            "-m",
            "tam.entrypoints.worker",  # Dramatiq's CLI, logging as JSON
            "tam.entrypoints.worker:setup",
            "--processes",
            "1",
            "--threads",
            str(threads),
            "--worker-shutdown-timeout",
            str(SHUTDOWN_TIMEOUT_MS),
        ]
        # Read by dramatiq.worker. A consumer holds at most `threads` messages: Dramatiq's default
        # prefetch (2 x threads) let one worker take jobs it could not start while another sat idle.
        os.environ.setdefault("dramatiq_worker_timeout", str(IDLE_POLL_MS))
        os.environ.setdefault("dramatiq_queue_prefetch", str(threads))
        sys.stdout.flush()
        sys.stderr.flush()
        raise typer.Exit(Supervisor(argv, processes, SHUTDOWN_TIMEOUT_MS / 1000).run())
