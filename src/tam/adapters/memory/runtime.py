"""The clock of a single process."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime


class SystemClock:
    """Monotonic time is the event loop's, so tests can fast-forward it (looptime)."""

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return asyncio.get_running_loop().time()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)
