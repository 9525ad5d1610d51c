"""Prompt caching in the fake Anthropic, as documented at
https://platform.claude.com/docs/en/build-with-claude/prompt-caching (see PromptCache)."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class CachePlan:
    breakpoints: tuple[tuple[str, int, float], ...]  # (exact-prefix key, prefix tokens, lifetime s)
    total_tokens: int
    hit_at_arrival: int  # tokens of the longest prefix cached when the request arrived
    min_tokens: int


class PromptCache:
    """https://platform.claude.com/docs/en/build-with-claude/prompt-caching : the cache key is the exact
    prefix (tools, then system, then messages) up to a block marked `cache_control`; a prefix under the
    model's minimum is not cached and says so only through zero counters; an entry lives 5 minutes
    (`ttl: "1h"`: an hour), refreshed at each read; it is readable once the response that writes it has
    begun, so requests that arrive before that miss."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._expires: dict[str, float] = {}
        self._lock = threading.Lock()

    def plan(self, body: dict[str, Any], count: Callable[[str], int], min_tokens: int) -> CachePlan:
        """What the request would find cached now; `count` gives the model's tokens for a text."""
        model = str(body["model"])
        blocks = _blocks(body)
        automatic = isinstance(body.get("cache_control"), dict)
        marks: list[tuple[str, int, float]] = []
        digest, tokens = hashlib.sha256(model.encode()), 0
        for i, (block, control) in enumerate(blocks):
            digest.update(json.dumps(block, sort_keys=True).encode())
            tokens += count(json.dumps(block) if "text" not in block else str(block["text"]))
            if automatic and i == len(blocks) - 1:
                control = control or body["cache_control"]
            if control:
                ttl = 3600.0 if control.get("ttl") == "1h" else 300.0
                marks.append((digest.copy().hexdigest(), tokens, ttl))
        with self._lock:
            now = self._clock()
            hit = max((n for key, n, _ in marks if self._expires.get(key, 0) > now), default=0)
        return CachePlan(tuple(marks), tokens, hit, min_tokens)

    def settle(self, plan: CachePlan) -> tuple[int, int]:
        """At response time: (cache read tokens, cache write tokens); stores and refreshes entries."""
        with self._lock:
            now = self._clock()
            read = plan.hit_at_arrival
            write = 0
            for key, tokens, ttl in plan.breakpoints:
                if tokens < plan.min_tokens:
                    continue  # under the minimum: nothing cached, no error
                self._expires[key] = now + ttl
                write = max(write, tokens - read)
            return read, write


def _blocks(body: dict[str, Any]) -> list[tuple[dict[str, Any], dict[str, Any] | None]]:
    """Prompt blocks in cache order, each without its cache_control, with that control."""
    out: list[tuple[dict[str, Any], dict[str, Any] | None]] = []

    def add(block: Any) -> None:
        if isinstance(block, str):
            out.append(({"type": "text", "text": block}, None))
        elif isinstance(block, dict):
            control = block.get("cache_control")
            out.append(({k: v for k, v in block.items() if k != "cache_control"}, control or None))

    for tool in body.get("tools") or []:
        add(tool)
    system = body.get("system")
    for block in [system] if isinstance(system, str) else system or []:
        add(block)
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        for block in [content] if isinstance(content, str) else content or []:
            add(block)
    return out
