"""A job's budget in dollars. Each provider call reserves its worst case before it starts and settles
at what it really used when it ends, so calls in flight can never together pass the cap."""

from __future__ import annotations

import asyncio

from tam.domain.model import TamError, Usage
from tam.domain.pricing import PriceTable


class BudgetReached(TamError):
    """The next call's worst case does not fit in what is left of the job's budget."""

    def __init__(self, limit_usd: float) -> None:
        super().__init__(f"budget of ${limit_usd:,.2f} reached")
        self.limit_usd = limit_usd


class Budget:
    def __init__(self, limit_usd: float, prices: PriceTable, spent: Usage) -> None:
        self.limit_usd = limit_usd
        self._prices = prices
        self.spent_usd = prices.cost(spent)  # what earlier attempts of the job already used
        self.reserved_usd = 0.0
        self._holders = 0  # calls holding money: counted, since float sums never quite return to 0
        self._settled = asyncio.Condition()

    async def reserve(self, worst: Usage) -> float:
        """Hold the worst case of one call; returns the amount held. While other calls hold money, a
        call that does not fit waits for them to settle (they usually use far less than they held);
        when it still does not fit with nothing else in flight, BudgetReached."""
        amount = self._prices.cost(worst)
        async with self._settled:
            while self.spent_usd + self.reserved_usd + amount > self.limit_usd:
                if self._holders == 0:
                    raise BudgetReached(self.limit_usd)
                await self._settled.wait()
            self.reserved_usd += amount
            self._holders += 1
        return amount

    async def settle(self, held: float, used: Usage) -> None:
        async with self._settled:
            self._holders -= 1
            self.reserved_usd = max(0.0, self.reserved_usd - held) if self._holders else 0.0
            self.spent_usd += self._prices.cost(used)
            self._settled.notify_all()
