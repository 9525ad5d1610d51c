"""Rate-limit signals of the live adapters against the fakes: a 429 is a throttled transient error
with its Retry-After, and a nearly spent quota in the headers comes back as Pressure.NEAR."""

from __future__ import annotations

import pytest

from tam.domain.model import Person, Pressure, TransientProviderError
from tam_fakes import FakeServer
from tests.contract.provider_fakes import KEY, company, live_adapter, project


async def call(kind: str, adapter: object) -> object:
    if kind == "claude":
        return await adapter.qualify(project(), company())  # type: ignore[attr-defined]
    if kind == "prospeo_search":
        return await adapter.search(project(), company(), 3)  # type: ignore[attr-defined]
    person = Person(full_name="Ada Lovelace", first_name="Ada", last_name="Lovelace")
    return await adapter.find_email(person, company())  # type: ignore[attr-defined]


@pytest.mark.parametrize("kind", ["claude", "prospeo_search", "prospeo_enrich"])
async def test_quota_pressure_is_reported_and_a_429_is_throttled(kind: str) -> None:
    vendor = "anthropic" if kind == "claude" else "prospeo"
    # A bucket of 3 requests refilled at 1 a minute: the third empties it, the fourth is refused.
    with FakeServer(vendor, api_key=KEY, rate_limit=1, rate_burst=3) as fake:
        adapter = live_adapter(kind, fake.url, concurrency=10)
        try:
            first = await call(kind, adapter)
            await call(kind, adapter)
            third = await call(kind, adapter)  # the last request of the bucket: nothing left
            with pytest.raises(TransientProviderError) as refused:
                await call(kind, adapter)
        finally:
            await adapter.aclose()  # type: ignore[attr-defined]
    assert first.pressure is Pressure.EASY  # type: ignore[attr-defined]
    assert third.pressure is Pressure.NEAR  # type: ignore[attr-defined]
    assert refused.value.throttled
    assert refused.value.retry_after is not None and refused.value.retry_after > 1
    assert fake.state.throttled == 1
