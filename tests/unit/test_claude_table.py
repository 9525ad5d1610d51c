"""The Claude capability table and the cache warm-up, without a server."""

from __future__ import annotations

import asyncio

import pytest

from tam.adapters.claude import ClaudeQualifier
from tam.adapters.claude_cache import PrefixWarmup
from tam.adapters.claude_models import PROFILES, profile_for
from tam.adapters.claude_prompt import system_text, tokens_at_least
from tests.contract.provider_fakes import company, project


@pytest.mark.parametrize(
    ("model", "row"),
    [
        ("claude-sonnet-5-5", "claude-sonnet-5-5"),
        ("claude-sonnet-5", "claude-sonnet-5"),
        ("claude-sonnet-5-20260630", "claude-sonnet-5"),
        ("claude-sonnet-4-5-20250929", "claude-sonnet-4-5"),
        ("claude-sonnet-4-20250514", "claude-sonnet-4"),
        ("claude-3-5-haiku-latest", "claude-3-5-haiku"),
        ("claude-opus-5-5", "claude-sonnet-5-5"),  # unknown: the newest rules
    ],
)
def test_an_id_takes_its_familys_row(model: str, row: str) -> None:
    assert profile_for(model) is PROFILES[row]


def test_effort_falls_back_to_the_next_lower_level_the_model_takes() -> None:
    assert profile_for("claude-sonnet-5-5").effort_for("xhigh") == "xhigh"
    assert profile_for("claude-sonnet-4-6").effort_for("xhigh") == "high"
    assert profile_for("claude-sonnet-4-5").effort_for("low") is None


def test_the_prefix_reaches_every_minimum_under_2048_even_with_a_one_word_icp() -> None:
    floor = tokens_at_least(system_text("p", "SaaS"))
    assert floor >= max(p.cache_min_tokens for p in PROFILES.values() if p.cache_min_tokens <= 2048)


def test_no_request_carries_what_its_model_refuses() -> None:
    for name, row in PROFILES.items():
        params = ClaudeQualifier(api_key=None, model=name, effort="max").request_params(project(), company())
        assert not {"temperature", "top_p", "top_k"} & set(params)
        assert ("tool_choice" in params) is not row.structured_outputs
        assert params.get("thinking", {}).get("type", "adaptive") == "adaptive"
        if row.thinks_by_default:  # room for thinking at the effort asked
            assert params["max_tokens"] >= 2048


async def test_the_first_call_for_a_prefix_goes_alone() -> None:
    warmup, order = PrefixWarmup(), []

    async def call(i: int) -> None:
        async with warmup.call("k"):
            order.append(("start", i))
            await asyncio.sleep(0.05 if i == 0 else 0)
            order.append(("end", i))

    await asyncio.gather(*(call(i) for i in range(5)))
    assert order[:2] == [("start", 0), ("end", 0)]  # the others waited for the first answer


async def test_a_failed_first_call_hands_the_warm_up_to_the_next() -> None:
    warmup, started = PrefixWarmup(), []

    async def failing() -> None:
        async with warmup.call("k"):
            await asyncio.sleep(0.01)
            raise RuntimeError("429")

    with pytest.raises(RuntimeError):
        await failing()

    async def call(i: int) -> None:
        async with warmup.call("k"):
            started.append(i)
            await asyncio.sleep(0.02 if i == 0 else 0)
            started.append(-i - 1)

    await asyncio.gather(*(call(i) for i in range(3)))
    assert started[:2] == [0, -1]


async def test_a_prefix_unused_for_a_while_is_warmed_again() -> None:
    now = [0.0]
    warmup = PrefixWarmup(fresh_for=270, clock=lambda: now[0])
    async with warmup.call("k"):
        pass
    now[0] = 300.0
    order = []

    async def call(i: int) -> None:
        async with warmup.call("k"):
            order.append(i)
            await asyncio.sleep(0.02 if i == 0 else 0)
            order.append(-i - 1)

    await asyncio.gather(*(call(i) for i in range(3)))
    assert order[:2] == [0, -1]
