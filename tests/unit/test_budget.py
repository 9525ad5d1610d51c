"""Budget: each call holds its worst case, settles at what it used; a call that cannot fit waits
for the others, and with nothing in flight it is refused."""

from __future__ import annotations

import asyncio

import pytest

from tam.domain.model import Usage
from tam.domain.pricing import PriceTable
from tam.domain.services.budget import Budget, BudgetReached

PRICES = PriceTable("claude-sonnet-5-5", units={"prospeo_credits": 1.0})  # one dollar a credit: easy sums


def credits(n: int) -> Usage:
    return Usage.of(prospeo_credits=n)


async def test_spent_usage_of_earlier_attempts_counts() -> None:
    budget = Budget(5.0, PRICES, credits(4))
    await budget.reserve(credits(1))
    with pytest.raises(BudgetReached, match=r"budget of \$5.00 reached"):
        await Budget(5.0, PRICES, credits(5)).reserve(credits(1))


async def test_a_call_that_does_not_fit_waits_for_one_in_flight_then_goes() -> None:
    budget = Budget(10.0, PRICES, Usage())
    held = await budget.reserve(credits(8))
    waiting = asyncio.create_task(budget.reserve(credits(8)))
    await asyncio.sleep(0)
    assert not waiting.done()  # 8 + 8 > 10 while the first holds its worst case
    await budget.settle(held, credits(1))  # it used far less
    assert await asyncio.wait_for(waiting, 1) == 8
    assert (budget.spent_usd, budget.reserved_usd) == (1.0, 8.0)


async def test_a_call_that_cannot_fit_with_nothing_in_flight_is_refused() -> None:
    budget = Budget(10.0, PRICES, Usage())
    held = await budget.reserve(credits(6))
    waiting = asyncio.create_task(budget.reserve(credits(6)))
    await asyncio.sleep(0)
    await budget.settle(held, credits(6))
    with pytest.raises(BudgetReached):
        await asyncio.wait_for(waiting, 1)
    assert budget.spent_usd + budget.reserved_usd <= 10.0


async def test_sums_that_do_not_return_to_zero_in_floating_point_still_refuse() -> None:
    # 0.1 + 0.2 - 0.1 - 0.2 is not 0.0 in floating point: a waiting call must not wait forever on it.
    budget = Budget(0.35, PriceTable("x", units={"prospeo_credits": 0.1, "brightdata_records": 0.2}), Usage())
    a = await budget.reserve(Usage.of(prospeo_credits=1))
    b = await budget.reserve(Usage.of(brightdata_records=1))
    waiting = asyncio.create_task(budget.reserve(Usage.of(brightdata_records=1)))
    await budget.settle(a, Usage.of(prospeo_credits=1))
    await budget.settle(b, Usage.of(brightdata_records=1))
    with pytest.raises(BudgetReached):
        await asyncio.wait_for(waiting, 1)
