"""What every pipeline step provides to the job runner."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Generic, Protocol, TypeVar

from tam.domain.model import NO_USAGE, Job, Project, Usage
from tam.domain.services.calls import ProviderCalls

Item = TypeVar("Item")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one item (or batch of items) came to; `tally` carries step-specific counts."""

    done: int = 1
    failed: int = 0
    usage: Usage = NO_USAGE
    tally: Mapping[str, int] = field(default_factory=dict)


@dataclass(slots=True)
class Totals:
    total: int
    done: int = 0
    failed: int = 0
    usage: Usage = NO_USAGE
    tally: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: Outcome) -> None:
        self.done += outcome.done
        self.failed += outcome.failed
        self.usage = self.usage + outcome.usage
        for key, value in outcome.tally.items():
            self.tally[key] = self.tally.get(key, 0) + value

    @property
    def remaining(self) -> int:
        return max(0, self.total - self.done - self.failed)


class Buffer(Generic[R]):
    """Results a step holds until the runner's group commit stores them with `write`, in one statement
    (as soon as the write before ends, and before each progress write, so progress never counts an
    item that is not stored). The batch is taken before the first await and put back if the write
    fails, so a retry after an outage stores the same results."""

    def __init__(self, write: Callable[[list[R]], Awaitable[object]]) -> None:
        self._write = write
        self._items: list[R] = []

    def add(self, item: R) -> None:
        self._items.append(item)

    async def flush(self) -> None:
        batch, self._items = self._items, []
        if batch:
            try:
                await self._write(batch)
            except BaseException:
                self._items[:0] = batch  # held for the retry
                raise


@dataclass(slots=True)
class StepRun:
    """One attempt at a step: what the runner and the step share for its length. Steps keep no state
    of their own, so one wired instance serves every job and attempt, side by side."""

    project: Project
    job: Job
    calls: ProviderCalls
    buffer: Buffer[Any] | None = None  # set by a step that buffers results (`plan`); the runner flushes it
    status: str | None = None  # what the attempt waits on, shown in the job's message (a batch's progress)
    state: Any = None  # the step's own per-attempt state (qualify: its Message Batch)


class Step(Protocol[Item]):
    noun: str  # "companies", as in "Qualified 45 of 150 companies"
    verb: str

    def workers(self) -> int:
        """How many items are worked on at once (the sliding window's width)."""
        ...

    async def plan(self, run: StepRun) -> Sequence[Item]:
        """The unfinished items of `run.job`; a resumed job gets only what an earlier attempt left.
        A step that buffers its results sets `run.buffer` here."""
        ...

    def weight(self, item: Item) -> int:
        """How many progress units the item counts for (a batch of contacts counts each)."""
        ...

    async def process(self, run: StepRun, item: Item) -> Outcome:
        """Do the item (its provider calls through `run.calls`) and store its result idempotently, or
        add it to `run.buffer`."""
        ...

    async def fail(self, run: StepRun, item: Item, reason: str) -> None:
        """Record a permanent failure on the item."""
        ...

    async def summary(self, project: Project, totals: Totals) -> str:
        """The job's closing message; it covers the whole job (every attempt), not just the last one."""
        ...
