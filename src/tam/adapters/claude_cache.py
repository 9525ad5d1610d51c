"""Prompt caching that pays: ask for it only when the prefix can be cached, and let the first call for
a new prefix write the cache before the calls queued behind it read it.

https://platform.claude.com/docs/en/build-with-claude/prompt-caching :
- a prefix shorter than the model's minimum cacheable length is not cached, with no error: only the
  usage counters (`cache_creation_input_tokens`, `cache_read_input_tokens`) stay at zero;
- the default cache lives 5 minutes, refreshed each time it is read;
- a cache entry is only available once the first response that writes it has begun, so concurrent
  first requests each miss (and each pay the write); for hits on parallel requests, wait for the first
  response before sending the others.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import hashlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from tam.adapters.claude_models import ModelProfile
from tam.adapters.claude_prompt import tokens_at_least


def worth_caching(profile: ModelProfile, prefix_text: str) -> bool:
    """True when the prefix reaches the model's minimum (counted low, so it surely does)."""
    return tokens_at_least(prefix_text) >= profile.cache_min_tokens


@functools.lru_cache(maxsize=256)
def prefix_key(model: str, prefix_text: str) -> str:
    return hashlib.sha256(f"{model}\0{prefix_text}".encode()).hexdigest()


@dataclass(slots=True)
class _Entry:
    written: asyncio.Future[None]
    used: float


class PrefixWarmup:
    """Per prefix: the first call goes alone; calls that arrive while it is in flight wait for its
    answer (at most `wait_at_most` seconds), then go together and read the cache it wrote. A prefix
    unused for `fresh_for` seconds (under the 5-minute lifetime) is warmed again."""

    def __init__(
        self, *, fresh_for: float = 270.0, wait_at_most: float = 60.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._fresh_for = fresh_for
        self._wait_at_most = wait_at_most
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @contextlib.asynccontextmanager
    async def call(self, key: str | None) -> AsyncIterator[None]:
        """Wraps one request; `key` None (no caching asked) goes straight through."""
        if key is None:
            yield
            return
        loop = asyncio.get_running_loop()
        if self._loop is not loop:  # futures belong to one loop; a new loop starts cold
            self._entries.clear()
            self._loop = loop
        entry = self._entries.get(key)
        now = self._clock()
        if entry is not None and not entry.written.done():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(entry.written), self._wait_at_most)
            yield
            return
        if entry is not None and now - entry.used < self._fresh_for:
            entry.used = now
            yield
            return
        mine = _Entry(loop.create_future(), now)
        self._entries[key] = mine
        answered = False
        try:
            yield
            answered = True
        finally:
            if answered:
                mine.used = self._clock()
            elif self._entries.get(key) is mine:
                del self._entries[key]  # it wrote nothing: the next call warms again
            if not mine.written.done():
                mine.written.set_result(None)
