"""What every pipeline step provides to the job runner."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from tam.domain.model import NO_USAGE, Job, Project, Usage
from tam.domain.services.calls import ProviderCalls

Item = TypeVar("Item")


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


class Step(Protocol[Item]):
    noun: str  # "companies", as in "Qualified 45 of 150 companies"
    verb: str

    def workers(self) -> int:
        """How many items are worked on at once (the sliding window's width)."""
        ...

    async def plan(self, project: Project, job: Job) -> Sequence[Item]:
        """The unfinished items; a resumed job gets only what an earlier attempt left."""
        ...

    def weight(self, item: Item) -> int:
        """How many progress units the item counts for (a batch of contacts counts each)."""
        ...

    async def process(self, project: Project, item: Item, calls: ProviderCalls) -> Outcome:
        """Do the item and store its result idempotently."""
        ...

    async def fail(self, project: Project, item: Item, reason: str) -> None:
        """Record a permanent failure on the item."""
        ...

    async def flush(self) -> None:
        """Store the results `process` buffered, in one write. The runner calls it as soon as the write
        before it ends (group commit) and before each progress write, so progress never counts an item
        that is not stored. It takes the buffer before its first await and puts it back if the write
        fails, so a retry after an outage stores the same results."""
        ...

    async def summary(self, project: Project, totals: Totals) -> str:
        """The job's closing message; it covers the whole job (every attempt), not just the last one."""
        ...
