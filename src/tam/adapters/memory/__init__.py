"""In-memory adapters: real code used by tests, the demo and the docs."""

from tam.adapters.memory.pacer import LocalLimiter
from tam.adapters.memory.runtime import RecordingProgressSink, StoreProgressSink, SystemClock
from tam.adapters.memory.store import (
    MemoryCompanyRepo,
    MemoryContactRepo,
    MemoryDatabase,
    MemoryJobRepo,
    MemoryProjectRepo,
)

__all__ = [
    "LocalLimiter",
    "MemoryCompanyRepo",
    "MemoryContactRepo",
    "MemoryDatabase",
    "MemoryJobRepo",
    "MemoryProjectRepo",
    "RecordingProgressSink",
    "StoreProgressSink",
    "SystemClock",
]
