"""A tam_fakes server in a child process, so it does not share the benchmark's GIL (2 cores).

`with FakeProcess("anthropic", latency=0.05) as fake: fake.url; fake.served()` — `served()` returns
the latencies the fake injected since the last call (and forgets them), `stats()` its counters.
"""

from __future__ import annotations

import multiprocessing as mp
import time
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any


def _serve(vendor: str, knobs: dict[str, Any], conn: Connection) -> None:
    from tam_fakes.anthropic_batches import batches
    from tam_fakes.server import FakeServer

    with FakeServer(vendor, **knobs) as fake:
        conn.send(fake.url)
        while True:
            command = conn.recv()
            state = fake.state
            if command == "served":
                served, state.served_latencies[:] = list(state.served_latencies), []
                conn.send(served)
            elif command == "stats":
                conn.send(
                    {
                        "requests": len(state.requests),
                        "throttled": state.throttled,
                        "cpu_s": time.process_time(),  # the fake's own CPU (server thread included)
                        "peak_in_flight": state.peak_in_flight,
                        **{k: v for k, v in state.options.items() if isinstance(v, int | float)},
                        "batch_creates": batches(state).creates,
                    }
                )
            elif command == "reset":
                state.reset()
                conn.send(None)
            else:
                conn.send(None)
                return


class FakeProcess:
    def __init__(self, vendor: str, **knobs: Any) -> None:
        self._vendor = vendor
        self._knobs = knobs
        self.url = ""

    def __enter__(self) -> FakeProcess:
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_serve, args=(self._vendor, self._knobs, child), daemon=True)
        self._proc.start()
        self.url = self._conn.recv()
        return self

    def _ask(self, command: str) -> Any:
        self._conn.send(command)
        return self._conn.recv()

    def served(self) -> list[float]:
        return list(self._ask("served"))

    def stats(self) -> dict[str, Any]:
        return dict(self._ask("stats"))

    def reset(self) -> None:
        self._ask("reset")

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._ask("stop")
        self._proc.join(timeout=10)
