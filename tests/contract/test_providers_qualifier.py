"""LLMQualifier contract: the sandbox adapter and ClaudeQualifier against the fake Messages API."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tam.adapters.claude import ClaudeQualifier
from tam.adapters.memory import SystemClock
from tam.adapters.sandbox import SandboxBehaviour, SandboxQualifier
from tam.domain.model import PermanentItemError, TransientProviderError
from tam.ports.providers import LLMQualifier
from tam_fakes import FakeServer
from tam_fakes.anthropic import expected_qualified
from tests.contract.provider_fakes import company, fake, live_adapter, project


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with fake("anthropic") as running:
        yield running


@pytest.fixture
def anthropic(server: FakeServer) -> FakeServer:
    server.state.reset()
    return server


@pytest.fixture
async def claude(anthropic: FakeServer) -> AsyncIterator[ClaudeQualifier]:
    adapter = live_adapter("claude", anthropic.url)
    yield adapter
    await adapter.aclose()


@pytest.fixture(params=["sandbox", "live"])
async def qualifier(request: pytest.FixtureRequest, anthropic: FakeServer) -> AsyncIterator[LLMQualifier]:
    if request.param == "sandbox":
        yield SandboxQualifier(SandboxBehaviour(SystemClock(), latency=0))
        return
    adapter = live_adapter("claude", anthropic.url)
    yield adapter
    await adapter.aclose()


async def test_gives_a_verdict_with_a_reason_and_token_usage(qualifier: LLMQualifier) -> None:
    for domain in ("northwind3.com", "bluegate7.io", "deepwave2.co"):
        verdict = await qualifier.qualify(project(), company(domain))
        assert isinstance(verdict.qualified, bool)
        assert verdict.reason.strip()
        assert verdict.usage.counts["claude_input_tokens"] > 0
        assert verdict.usage.counts["claude_output_tokens"] > 0


async def test_sandbox_faults_are_transient() -> None:
    sandbox = SandboxQualifier(SandboxBehaviour(SystemClock(), fault_rate=1.0))
    with pytest.raises(TransientProviderError):
        await sandbox.qualify(project(), company())


async def test_the_verdict_is_the_models(claude: ClaudeQualifier) -> None:
    for domain in ("northwind3.com", "bluegate7.io", "deepwave2.co", "ironpath4.com"):
        assert (await claude.qualify(project(), company(domain))).qualified is expected_qualified(domain)


async def test_request_caches_the_icp_and_asks_for_structured_output(
    claude: ClaudeQualifier, anthropic: FakeServer
) -> None:
    await claude.qualify(project(), company("northwind3.com"))
    [sent] = anthropic.state.calls("/v1/messages")
    body: dict[str, Any] = sent.body
    assert sent.headers["authorization"] == "Bearer fake-key-123"
    assert sent.headers["x-stainless-retry-count"] == "0"
    [system] = body["system"]
    assert system["cache_control"] == {"type": "ephemeral"}
    assert project().icp in system["text"]
    [message] = body["messages"]
    assert message["role"] == "user"
    assert "northwind3.com" in message["content"] and "51,200" in message["content"]
    schema = body["output_config"]["format"]
    assert schema["type"] == "json_schema"
    assert set(schema["schema"]["required"]) == {"qualified", "reason"}
    assert "tool_choice" not in body
    assert body["model"] == "claude-sonnet-5-5"


async def test_cache_reads_and_writes_are_counted(claude: ClaudeQualifier) -> None:
    fresh = project(name=f"cache test {uuid.uuid4()}")  # a prompt the fake has not cached yet
    first = await claude.qualify(fresh, company("northwind3.com"))
    second = await claude.qualify(fresh, company("bluegate7.io"))
    assert first.usage.counts.get("claude_cache_write_tokens", 0) > 0
    assert second.usage.counts.get("claude_cache_read_tokens", 0) > 0
    assert "claude_cache_write_tokens" not in second.usage.counts


async def test_sonnet_4_uses_a_forced_tool(anthropic: FakeServer) -> None:
    adapter = live_adapter("claude", anthropic.url, model="claude-sonnet-4-6")
    try:
        verdict = await adapter.qualify(project(), company("northwind3.com"))
    finally:
        await adapter.aclose()
    assert verdict.qualified is expected_qualified("northwind3.com")
    [sent] = anthropic.state.requests
    assert sent.body["tool_choice"] == {"type": "tool", "name": "record_verdict"}
    assert "output_config" not in sent.body


async def test_a_model_without_structured_outputs_falls_back_to_the_tool(anthropic: FakeServer) -> None:
    adapter = live_adapter("claude", anthropic.url, model="claude-3-5-haiku-latest")
    try:
        first = await adapter.qualify(project(), company("northwind3.com"))
        await adapter.qualify(project(), company("bluegate7.io"))
    finally:
        await adapter.aclose()
    assert first.qualified is expected_qualified("northwind3.com")
    sent = anthropic.state.requests
    assert [("output_config" in r.body, "tool_choice" in r.body) for r in sent] == [
        (True, False),
        (False, True),
        (False, True),  # remembered for the next company
    ]


@pytest.mark.parametrize("fault", ["malformed", "bad_schema", "garbage"])
async def test_malformed_output_is_retried_once(fault: str, claude: ClaudeQualifier, anthropic: FakeServer) -> None:
    anthropic.state.inject(fault)
    verdict = await claude.qualify(project(), company("northwind3.com"))
    assert verdict.qualified is expected_qualified("northwind3.com")
    assert len(anthropic.state.requests) == 2


@pytest.mark.parametrize("fault", ["malformed", "bad_schema"])
async def test_malformed_twice_is_an_item_error(fault: str, claude: ClaudeQualifier, anthropic: FakeServer) -> None:
    anthropic.state.inject(fault, times=2)
    with pytest.raises(PermanentItemError, match="no usable verdict after 2 tries"):
        await claude.qualify(project(), company("northwind3.com"))
    assert len(anthropic.state.requests) == 2


async def test_a_rejected_request_is_an_item_error(anthropic: FakeServer) -> None:
    # A forced tool on a model that refuses it: a 400 invalid_request_error for this item.
    adapter = live_adapter("claude", anthropic.url, model="claude-sonnet-5-5")
    adapter._forced_tool = True
    try:
        with pytest.raises(PermanentItemError, match="400"):
            await adapter.qualify(project(), company())
    finally:
        await adapter.aclose()
