"""The error taxonomy every live provider adapter shares, checked against each vendor's fake."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest

from tam.adapters.memory import LocalLimiter, SystemClock
from tam.domain.model import CredentialError, PermanentItemError, Person, TransientProviderError
from tam.domain.services.calls import ProviderCalls, RetryPolicy
from tam.ports.providers import DiscoveryQuery, LinkedinTarget
from tam_fakes import FakeServer
from tests.contract.provider_fakes import VENDOR_OF, company, fake, live_adapter, project

KINDS = list(VENDOR_OF)
SETTING = {
    "claude": "ANTHROPIC_API_KEY",
    "prospeo_search": "PROSPEO_API_KEY",
    "prospeo_enrich": "PROSPEO_API_KEY",
    "brightdata": "BRIGHT_DATA_API_KEY",
    "discolike": "DISCOLIKE_API_KEY",
}


@pytest.fixture(scope="module")
def servers() -> Iterator[dict[str, FakeServer]]:
    with ExitStack() as stack:
        yield {vendor: stack.enter_context(fake(vendor)) for vendor in set(VENDOR_OF.values())}


@pytest.fixture
def server(servers: dict[str, FakeServer], request: pytest.FixtureRequest) -> FakeServer:
    chosen = servers[VENDOR_OF[request.node.callspec.params["kind"]]]
    chosen.state.reset()
    return chosen


@pytest.fixture
async def make(server: FakeServer) -> AsyncIterator[Callable[..., Any]]:
    """Builds live adapters for the test and closes their HTTP clients afterwards."""
    built: list[Any] = []

    def build(kind: str, **options: Any) -> Any:
        built.append(live_adapter(kind, server.url, **options))
        return built[-1]

    yield build
    for adapter in built:
        await adapter.aclose()


async def one_call(kind: str, adapter: Any) -> Any:
    target = company()
    if kind == "claude":
        return await adapter.qualify(project(), target)
    if kind == "prospeo_search":
        return await adapter.search(project(), target, 3)
    if kind == "prospeo_enrich":
        return await adapter.find_email(Person("Kira Berg", None, "Kira", "Berg"), target)
    if kind == "brightdata":
        url = "https://www.linkedin.com/in/kira-berg-northwind3-0"
        return await adapter.check([LinkedinTarget(uuid.uuid4(), url, target.name, target.domain)])
    return await adapter.discover(DiscoveryQuery(icp_text="logistics SaaS", max_records=5))


@pytest.mark.parametrize("kind", KINDS)
async def test_a_plain_call_succeeds(kind: str, server: FakeServer, make: Callable[..., Any]) -> None:
    assert await one_call(kind, make(kind)) is not None
    assert len(server.state.requests) == 1


@pytest.mark.parametrize("kind", KINDS)
async def test_429_is_transient_and_carries_retry_after(
    kind: str, server: FakeServer, make: Callable[..., Any]
) -> None:
    server.state.inject("429", retry_after=7)
    with pytest.raises(TransientProviderError) as caught:
        await one_call(kind, make(kind))
    assert caught.value.retry_after == 7
    assert len(server.state.requests) == 1  # the adapter itself never retries


@pytest.mark.parametrize("status", ["500", "502", "503", "529"])
@pytest.mark.parametrize("kind", KINDS)
async def test_server_errors_are_transient(
    kind: str, status: str, server: FakeServer, make: Callable[..., Any]
) -> None:
    server.state.inject(status)
    with pytest.raises(TransientProviderError, match=status):
        await one_call(kind, make(kind))


@pytest.mark.parametrize("kind", KINDS)
async def test_a_timeout_is_transient(kind: str, server: FakeServer, make: Callable[..., Any]) -> None:
    server.state.inject("timeout")
    started = time.monotonic()
    with pytest.raises(TransientProviderError, match="time"):
        await one_call(kind, make(kind))
    assert time.monotonic() - started < 1.4  # the read timeout, not the server's sleep


@pytest.mark.parametrize("kind", KINDS)
async def test_a_wrong_key_is_a_credential_error_naming_the_variable(
    kind: str, server: FakeServer, make: Callable[..., Any]
) -> None:
    with pytest.raises(CredentialError) as caught:
        await one_call(kind, make(kind, key="wrong-key"))
    assert caught.value.setting == SETTING[kind]
    assert SETTING[kind] in str(caught.value)
    assert "wrong-key" not in str(caught.value)  # never echo a secret


@pytest.mark.parametrize("kind", KINDS)
async def test_a_missing_key_fails_the_first_call_without_a_request(
    kind: str, server: FakeServer, make: Callable[..., Any]
) -> None:
    adapter = make(kind, key=None)  # building it must not fail
    with pytest.raises(CredentialError, match=f"{SETTING[kind]} is not set") as caught:
        await one_call(kind, adapter)
    assert caught.value.setting == SETTING[kind]
    assert server.state.requests == []


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "brightdata"])
async def test_no_credits_is_a_credential_error(kind: str, server: FakeServer, make: Callable[..., Any]) -> None:
    server.state.inject("no_credits")
    with pytest.raises(CredentialError) as caught:
        await one_call(kind, make(kind))
    assert caught.value.setting == SETTING[kind]


@pytest.mark.parametrize("kind", KINDS)
async def test_a_garbled_body_is_an_item_error(kind: str, server: FakeServer, make: Callable[..., Any]) -> None:
    server.state.inject("garbage", times=2)
    with pytest.raises(PermanentItemError):
        await one_call(kind, make(kind))


@pytest.mark.parametrize("kind", KINDS)
async def test_the_runner_waits_the_retry_after_then_succeeds(
    kind: str, server: FakeServer, make: Callable[..., Any]
) -> None:
    server.state.inject("429", retry_after=0.4)
    adapter = make(kind)
    calls = ProviderCalls(LocalLimiter({}), SystemClock(), RetryPolicy(), asyncio.Event())
    started = time.monotonic()
    assert await calls.call(kind, lambda: one_call(kind, adapter)) is not None
    assert time.monotonic() - started >= 0.4
    assert len(server.state.requests) == 2
