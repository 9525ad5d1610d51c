"""What each Claude model accepts, so the request shape is decided before the first call, never by
reacting to a 400 at run time.

Sources (checked 2026-12):
- Sonnet 5.5: https://platform.claude.com/docs/en/models/sonnet-5-5/migration-guide and
  https://platform.claude.com/docs/en/models/sonnet-5-5/whats-new-sonnet-5-5 : adaptive thinking on by
  default at effort `high`; `max_tokens` caps thinking and answer together; five settings return 400
  (thinking budgets, sampling parameters, assistant prefill, forced tool choice, thinking disabled).
- Sonnet 5: https://platform.claude.com/docs/en/models/sonnet-5/migration-guide : adaptive thinking on by
  default, manual thinking budgets and non-default sampling parameters return 400, new tokenizer.
- Effort levels per model: https://platform.claude.com/docs/en/build-with-claude/effort (supported
  models; `xhigh` and `max` only on some).
- Structured outputs (`output_config.format`), GA on Sonnet 4.5 and later:
  https://platform.claude.com/docs/en/build-with-claude/structured-outputs . Older models get the
  answer through a forced tool.
- Minimum cacheable prompt length: https://platform.claude.com/docs/en/build-with-claude/prompt-caching
  (1,024 tokens for Sonnet 4 to Sonnet 5; 4,096 for Haiku 4.5; 2,048 for Haiku 3.x). For Sonnet 4.6
  the docs say 1,024 but callers observed caching only from 2,048
  (https://github.com/anthropics/anthropic-sdk-python/issues/1194): the table takes 2,048. For Sonnet
  5.5 a third-party summary says 512; the table keeps the documented Sonnet minimum of 1,024.
"""

from __future__ import annotations

from dataclasses import dataclass

EFFORTS = ("low", "medium", "high", "xhigh", "max")


@dataclass(frozen=True, slots=True)
class ModelProfile:
    name: str
    # output_config.format (JSON schema) for the verdict; False: a forced tool (tool_choice) instead.
    structured_outputs: bool
    # Adaptive thinking runs unless turned off, and its tokens count against max_tokens.
    thinks_by_default: bool
    # output_config.effort values the model accepts (empty: no effort parameter).
    efforts: tuple[str, ...]
    # The prefix before a cache breakpoint must be at least this long, or nothing is cached.
    cache_min_tokens: int

    def effort_for(self, wanted: str) -> str | None:
        """The configured effort, or the nearest lower one this model accepts (None: send none)."""
        if not self.efforts:
            return None
        for level in reversed(EFFORTS[: EFFORTS.index(wanted) + 1]):
            if level in self.efforts:
                return level
        return self.efforts[0]

    def max_tokens(self, effort: str | None, attempt: int) -> int:
        """Room for the answer (about 100 tokens) and, on thinking models, for thinking at `effort`.
        Each retry after a `max_tokens` stop doubles it."""
        base = 1024
        if self.thinks_by_default:
            base = {"low": 2048, "medium": 4096, "high": 8192, "xhigh": 16384, "max": 32768}[effort or "high"]
        return int(base * 2**attempt)


_SONNET_5 = ModelProfile("Claude Sonnet 5", True, True, EFFORTS, 1024)

# Longest matching id prefix wins; dated snapshots and aliases share their family's row.
PROFILES: dict[str, ModelProfile] = {
    "claude-sonnet-5-5": ModelProfile("Claude Sonnet 5.5", True, True, EFFORTS, 1024),
    "claude-sonnet-5": _SONNET_5,
    "claude-sonnet-4-6": ModelProfile("Claude Sonnet 4.6", True, False, ("low", "medium", "high", "max"), 2048),
    "claude-sonnet-4-5": ModelProfile("Claude Sonnet 4.5", True, False, (), 1024),
    "claude-sonnet-4": ModelProfile("Claude Sonnet 4", False, False, (), 1024),
    "claude-haiku-4-5": ModelProfile("Claude Haiku 4.5", True, False, (), 4096),
    "claude-3-7-sonnet": ModelProfile("Claude Sonnet 3.7", False, False, (), 1024),
    "claude-3-5-haiku": ModelProfile("Claude Haiku 3.5", False, False, (), 2048),
    "claude-3": ModelProfile("Claude 3", False, False, (), 2048),
}

# One id per row, for the contract tests that run the adapter against the fake for every row.
EXAMPLE_IDS: dict[str, str] = {
    "claude-sonnet-5-5": "claude-sonnet-5-5",
    "claude-sonnet-5": "claude-sonnet-5",
    "claude-sonnet-4-6": "claude-sonnet-4-6",
    "claude-sonnet-4-5": "claude-sonnet-4-5-20250929",
    "claude-sonnet-4": "claude-sonnet-4-20250514",
    "claude-haiku-4-5": "claude-haiku-4-5",
    "claude-3-7-sonnet": "claude-3-7-sonnet-20250219",
    "claude-3-5-haiku": "claude-3-5-haiku-latest",
    "claude-3": "claude-3-haiku-20240307",
}


def profile_for(model: str) -> ModelProfile:
    """The row for `model`. An id the table does not know is taken to be a newer model and gets the
    newest rules (structured outputs, adaptive thinking with effort), which newer models keep."""
    matches = [prefix for prefix in PROFILES if model == prefix or model.startswith(prefix + "-")]
    if not matches:
        return PROFILES["claude-sonnet-5-5"]
    return PROFILES[max(matches, key=len)]
