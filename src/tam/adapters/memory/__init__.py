"""In-memory adapters: real code used by tests, the demo and the docs."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from tam.adapters.memory.pacer import LocalLimiter
from tam.adapters.memory.runtime import SystemClock
from tam.adapters.memory.store import (
    MemoryCompanyRepo,
    MemoryContactRepo,
    MemoryDatabase,
    MemoryJobRepo,
    MemoryProjectRepo,
)
from tam.ports.storage import Store

__all__ = [
    "LocalLimiter",
    "MemoryCompanyRepo",
    "MemoryContactRepo",
    "MemoryDatabase",
    "MemoryJobRepo",
    "MemoryProjectRepo",
    "SystemClock",
    "open_store",
]


@asynccontextmanager
async def open_store() -> AsyncIterator[Store]:
    """The four repositories over one fresh in-memory database (gone with the process)."""
    db = MemoryDatabase()
    yield Store(MemoryProjectRepo(db), MemoryCompanyRepo(db), MemoryContactRepo(db), MemoryJobRepo(db))
