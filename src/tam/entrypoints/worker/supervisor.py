"""`tam worker` as a process: it checks Redis first, then supervises one `dramatiq` master per worker
process (each with one child running the actors), and replaces a master whose child died.

- Redis unreachable at start: one line naming REDIS_URL on stderr, exit 1 after about 10 s of trying.
- A killed child: its dramatiq master exits, and the supervisor starts a new one (the job's message
  is redelivered after the heartbeat timeout, or its job is requeued by the stale-job sweep). Five
  deaths within a minute end the supervisor with exit 1, so the platform can restart it.
- SIGTERM/SIGINT: forwarded to every master (which forward it to their children: running jobs are put
  back on the queue), then exit 0 once they are gone (at most the drain time later).
- SIGKILL of the supervisor or of a master: every process below it gets SIGTERM from the kernel
  (PR_SET_PDEATHSIG), so no child outlives its parent.
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from types import FrameType

import redis

PR_SET_PDEATHSIG = 1
REDIS_WAIT_S = 10.0
RESTARTS_PER_MINUTE = 5


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask the kernel to send `sig` to this process when its parent exits (Linux; elsewhere a no-op)."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, sig, 0, 0, 0)


def redis_problem(url: str, wait: float = REDIS_WAIT_S) -> str | None:
    """None once Redis answers a PING; else, after `wait` seconds of trying, why not (no secret in it)."""
    deadline = time.monotonic() + wait
    while True:
        client = redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2)
        try:
            client.ping()
            return None
        except (redis.RedisError, OSError, ValueError) as exc:
            problem = type(exc).__name__
            if isinstance(exc, ValueError) or time.monotonic() > deadline:
                return problem
        finally:
            client.close()
        time.sleep(1)


def _say(line: str) -> None:
    sys.stderr.write(f"tam worker: {line}\n")
    sys.stderr.flush()


class Supervisor:
    def __init__(self, argv: Sequence[str], processes: int, drain_s: float) -> None:
        self._argv = list(argv)
        self._processes = processes
        self._drain_s = drain_s
        self._children: list[subprocess.Popen[bytes]] = []
        self._stopping = False
        self._deaths: list[float] = []

    def _spawn(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(self._argv, preexec_fn=die_with_parent)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        self._stopping = True
        for child in self._children:
            if child.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    child.send_signal(signal.SIGTERM)

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        self._children = [self._spawn() for _ in range(self._processes)]
        while not self._stopping:
            time.sleep(0.2)
            for i, child in enumerate(self._children):
                code = child.poll()
                if code is None or self._stopping:
                    continue
                now = time.monotonic()
                self._deaths = [t for t in self._deaths if now - t < 60] + [now]
                if len(self._deaths) > RESTARTS_PER_MINUTE:
                    _say(
                        f"worker processes died {len(self._deaths)} times within a minute (last exit code {code});"
                        " stopping"
                    )
                    self._on_signal(signal.SIGTERM, None)
                    self._wait()
                    return 1
                _say(f"a worker process exited ({code}); starting a new one")
                self._children[i] = self._spawn()
        return self._wait()

    def _wait(self) -> int:
        deadline = time.monotonic() + self._drain_s + 10
        for child in self._children:
            try:
                child.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        return 0
