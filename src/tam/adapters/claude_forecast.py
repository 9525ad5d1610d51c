"""ClaudeUsageForecaster: the tokens one qualify call should use, read off the very request the
ClaudeQualifier would send (no call, no token-counting request).

Tokens are characters over a per-model ratio: about 4 characters a token for models before Sonnet 5;
"the new tokenizer produces about 30% more tokens for the same text" from Sonnet 5 on
(https://platform.claude.com/docs/en/models/sonnet-5/migration-guide), so 3.1 there. A system prompt
marked `cache_control` is written to the cache by a job's first call and read by the others
(https://platform.claude.com/docs/en/build-with-claude/prompt-caching: cache writes and reads are
reported apart from `input_tokens`). The answer's length is not in the request: the caller passes what
earlier jobs measured, else `default_output_tokens` (a short verdict plus some thinking at low effort).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

from tam.domain.model import Company, Project, Usage
from tam.ports.providers import CallForecast, UsageForecaster

ParamsFor = Callable[[Project, Company, int], dict[str, Any]]  # (project, company, retry) -> request body
NEW_TOKENIZER = ("claude-sonnet-5", "claude-opus-5", "claude-fable", "claude-haiku-5")


def chars_per_token(model: str) -> float:
    return 3.1 if model.startswith(NEW_TOKENIZER) else 4.0


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return ""


class ClaudeUsageForecaster(UsageForecaster):
    def __init__(
        self, params_for: ParamsFor, *, retries: int = 1, bigger_retries: int = 0, default_output_tokens: int = 150
    ) -> None:
        """`retries`: how many more calls one qualify may make for one company (malformed answers,
        answers cut at max_tokens); `bigger_retries` of them ask for more room (`params_for`'s third
        argument counts them)."""
        self._params_for = params_for
        self._tries = 1 + retries
        self._bigger = bigger_retries
        self._default_output = default_output_tokens

    def qualify_call(
        self, project: Project, company: Company, *, warm_cache: bool, output_tokens: float | None = None
    ) -> CallForecast:
        params = self._params_for(project, company, 0)
        ratio = chars_per_token(str(params.get("model", "")))
        system = params.get("system")
        cached = isinstance(system, list) and any(isinstance(b, dict) and b.get("cache_control") for b in system)
        system_tokens = round(len(_text(system)) / ratio)
        user_tokens = round(sum(len(_text(m.get("content"))) for m in params.get("messages", ())) / ratio)
        # A forced tool's definition is part of the prompt (it comes before the system prompt).
        schema_tokens = round(sum(len(json.dumps(t)) for t in params.get("tools") or ()) / ratio)
        answer = round(output_tokens if output_tokens is not None else self._default_output)
        expected = Usage.of(
            claude_input_tokens=user_tokens + schema_tokens + (0 if cached else system_tokens),
            claude_cache_read_tokens=system_tokens if cached and warm_cache else 0,
            claude_cache_write_tokens=system_tokens if cached and not warm_cache else 0,
            claude_output_tokens=answer,
        )
        largest = int(self._params_for(project, company, self._bigger).get("max_tokens", 0))
        # The worst case bills every try's whole prompt at the cache-write rate (the dearest input),
        # counted at half again the tokens (the characters-per-token ratio is an average), and fills
        # max_tokens each time.
        prompt = math.ceil((system_tokens + user_tokens + schema_tokens) * 1.5)
        worst = Usage.of(claude_cache_write_tokens=self._tries * prompt, claude_output_tokens=self._tries * largest)
        return CallForecast(expected, worst)
