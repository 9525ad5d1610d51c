"""Claude's rate budgets, as the Messages API documents them (docs.anthropic.com/en/api/rate-limits):

- three limits per model class, requests (RPM), input tokens (ITPM) and output tokens (OTPM) per
  minute, each a token bucket refilled continuously;
- every answer carries `anthropic-ratelimit-{requests,input-tokens,output-tokens}-{limit,remaining,reset}`;
- on current models `cache_read_input_tokens` do not count toward ITPM; uncached input and cache
  writes do;
- OTPM is estimated from `max_tokens` when the request starts and adjusted when it ends.

So a call is admitted with an estimate (uncached input tokens, `max_tokens` of output) and corrected
with the answer's usage; the estimator learns how far its character count is from the real tokens.
"""

from __future__ import annotations

import json
from collections.abc import Hashable, Mapping
from typing import Any

from tam.domain.model import Cost, RateLimits, RateSignal

_KINDS = ("requests", "input-tokens", "output-tokens")


def _number(headers: Mapping[str, str], name: str) -> float | None:
    try:
        value = float(headers.get(name, ""))
    except ValueError:
        return None
    return value if value >= 0 else None


def _count(usage: Any, name: str) -> int:
    return int(getattr(usage, name, 0) or 0)


def rate_signal(headers: Mapping[str, str], usage: Any) -> RateSignal:
    """The limits and remaining quota the headers announce, and what the call counted: one request,
    its uncached input tokens (input + cache writes) and its output tokens."""
    limits = [_number(headers, f"anthropic-ratelimit-{k}-limit") for k in _KINDS]
    remaining = [_number(headers, f"anthropic-ratelimit-{k}-remaining") for k in _KINDS]
    spent = None
    if usage is not None:
        uncached = int(getattr(usage, "input_tokens", 0) or 0) + int(
            getattr(usage, "cache_creation_input_tokens", 0) or 0
        )
        spent = Cost(1, uncached, int(getattr(usage, "output_tokens", 0) or 0))
    return RateSignal(RateLimits(*limits), RateLimits(*remaining), spent)


def combined(earlier: RateSignal | None, later: RateSignal) -> RateSignal:
    """The signal of several Messages calls made for one answer: the latest headers, the sum spent."""
    if earlier is None or earlier.spent is None or later.spent is None:
        return later
    a, b = earlier.spent, later.spent
    spent = Cost(a.requests + b.requests, a.input_tokens + b.input_tokens, a.output_tokens + b.output_tokens)
    return RateSignal(later.limits, later.remaining, spent)


class TokenEstimator:
    """Input tokens of a request before it is sent: characters / 4 of what will not be read from the
    cache (a block marked `cache_control` whose prefix was already seen is read from it), scaled by
    the ratio of real to estimated tokens seen so far."""

    def __init__(self) -> None:
        self._warm: set[Hashable] = set()
        self._ratio = 1.25  # start high: an overestimate only holds a call back until its correction

    def _prefix_key(self, request: Mapping[str, Any]) -> Hashable:
        """What makes the cached prefix: the model, the tools and the system blocks. A tuple, not a
        digest of their JSON: the system text (~10 KB, one string per project) hashes once."""
        system = request.get("system")
        blocks = system if isinstance(system, list) else [{"text": system or ""}]
        tools = request.get("tools")
        return (
            request.get("model"),
            json.dumps(tools, sort_keys=True) if tools else None,
            tuple((str(b.get("text", "")), repr(b.get("cache_control"))) for b in blocks if isinstance(b, dict)),
        )

    def _raw(self, request: Mapping[str, Any]) -> tuple[float, bool]:
        system = request.get("system")
        blocks = system if isinstance(system, list) else [{"text": system or ""}]
        cacheable = any(isinstance(b, dict) and b.get("cache_control") for b in blocks)
        warm = cacheable and self._prefix_key(request) in self._warm
        chars = 0 if warm else sum(len(str(b.get("text", ""))) for b in blocks if isinstance(b, dict))
        if not warm and request.get("tools"):
            chars += len(json.dumps(request["tools"]))
        for message in request.get("messages") or []:
            content = message.get("content", "")
            chars += len(content) if isinstance(content, str) else len(json.dumps(content))
        return chars / 4, cacheable

    def cost(self, request: Mapping[str, Any]) -> Cost:
        raw, _cacheable = self._raw(request)
        return Cost(1, max(1, round(raw * self._ratio)), int(request.get("max_tokens") or 0))

    def learn(self, request: Mapping[str, Any], usage: Any) -> None:
        """After an answer: its prefix is cached if it wrote or read the cache; adjust the ratio."""
        if usage is None:
            return
        raw, cacheable = self._raw(request)
        wrote = int(getattr(usage, "cache_creation_input_tokens", 0) or 0)
        read = int(getattr(usage, "cache_read_input_tokens", 0) or 0)
        real = int(getattr(usage, "input_tokens", 0) or 0) + wrote
        if raw > 0 and real > 0:
            self._ratio = 0.8 * self._ratio + 0.2 * (real / raw)
        if cacheable and (wrote or read):
            self._warm.add(self._prefix_key(request))
