"""Waiting out a database or broker outage during a job: infrastructure errors are weather, not bugs."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from tam.domain.model import InfrastructureError
from tam.ports.runtime import Clock

log = logging.getLogger(__name__)

T = TypeVar("T")

DEFAULT_TOLERANCE_S = 600.0


class OutageTooLong(InfrastructureError):
    """An outage outlasted TAM_OUTAGE_TOLERANCE: the attempt ends and leaves the job resumable."""


class Weather:
    """One attempt's view of its infrastructure. `run` retries a call that failed with an
    InfrastructureError with capped exponential backoff; while any call is failing, `clear` is unset
    so the attempt starts no new paid work, and past `tolerance` seconds of continuous outage the
    call raises OutageTooLong."""

    def __init__(self, clock: Clock, tolerance: float = DEFAULT_TOLERANCE_S, first: float = 0.2, cap: float = 2.0):
        self._clock = clock
        self._tolerance = tolerance
        self._first = first
        self._cap = cap
        self._since: float | None = None  # when the current outage began (monotonic)
        self.interrupted = False  # whether any call had to wait out an outage
        self.clear = asyncio.Event()
        self.clear.set()

    async def run(self, call: Callable[[], Awaitable[T]], what: str = "storage") -> T:
        delay = self._first
        while True:
            try:
                result = await call()
            except OutageTooLong:
                raise  # an inner wait already gave up: the attempt ends
            except InfrastructureError as exc:
                now = self._clock.monotonic()
                self.interrupted = True
                if self._since is None:
                    self._since = now
                    log.warning("%s unavailable (%s); holding results and retrying", what, type(exc).__name__)
                self.clear.clear()
                if now - self._since >= self._tolerance:
                    raise OutageTooLong(
                        f"{what} unavailable for {now - self._since:.0f} s (TAM_OUTAGE_TOLERANCE {self._tolerance:g} s)"
                    ) from exc
                await self._clock.sleep(min(delay, self._cap))
                delay *= 2
                continue
            if self._since is not None:
                log.info("%s back after %.1f s", what, self._clock.monotonic() - self._since)
                self._since = None
            self.clear.set()
            return result

    def failed(self) -> None:
        """A call outside `run` hit the outage (an item's own write): pause new work until a retry succeeds."""
        if self._since is None:
            self._since = self._clock.monotonic()
        self.clear.clear()
