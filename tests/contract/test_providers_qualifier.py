"""LLMQualifier contract: the sandbox adapter and ClaudeQualifier against the fake Messages API, which
applies the vendor's documented per-model rules (tests/contract/test_fake_anthropic.py checks those)."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import anthropic as anthropic_sdk
import pytest

from tam.adapters.claude import ClaudeQualifier
from tam.adapters.claude_models import EXAMPLE_IDS, profile_for
from tam.adapters.claude_prompt import RUBRIC
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
    server.state.latency = 0.0
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


def fresh_project() -> Any:
    return project(name=f"cache test {uuid.uuid4()}")  # a prefix the fake has not cached yet


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


async def test_the_request_for_sonnet_5_5(claude: ClaudeQualifier, anthropic: FakeServer) -> None:
    await claude.qualify(project(), company("northwind3.com"))
    [sent] = anthropic.state.calls("/v1/messages")
    body: dict[str, Any] = sent.body
    assert sent.headers["authorization"] == "Bearer fake-key-123"
    # Every header the SDK would send (API version, authentication, user agent), though the call
    # goes around the SDK's request machinery (tam.adapters.claude_messages).
    sdk = anthropic_sdk.AsyncAnthropic(api_key="fake-key-123", max_retries=0)
    expected = {k.lower(): v for k, v in sdk.default_headers.items() if isinstance(v, str)}
    await sdk.close()
    expected["x-stainless-async"] = "async:asyncio"
    assert {k: sent.headers.get(k) for k in expected} == expected
    assert body["model"] == "claude-sonnet-5-5"
    # Effort low (TAM_CLAUDE_EFFORT's default) and room for adaptive thinking plus the verdict.
    assert body["output_config"]["effort"] == "low"
    assert body["thinking"] == {"type": "adaptive"}
    assert body["max_tokens"] == 2048
    schema = body["output_config"]["format"]
    assert schema["type"] == "json_schema"
    assert set(schema["schema"]["required"]) == {"qualified", "reason"}
    # None of the five settings Sonnet 5.5 answers with 400.
    assert not {"tool_choice", "temperature", "top_p", "top_k"} & set(body)
    assert [m["role"] for m in body["messages"]] == ["user"]
    # The stable prefix (rules, rubric, ICP) is one cached system block; the company comes after it.
    [system] = body["system"]
    assert system["cache_control"] == {"type": "ephemeral"}
    assert RUBRIC in system["text"] and system["text"].rstrip().endswith(project().icp)
    [message] = body["messages"]
    assert "northwind3.com" in message["content"] and "51,200" in message["content"]


@pytest.mark.parametrize("row", list(EXAMPLE_IDS))
async def test_every_model_in_the_table_gets_a_request_it_accepts(row: str, anthropic: FakeServer) -> None:
    model = EXAMPLE_IDS[row]
    profile = profile_for(model)
    adapter = live_adapter("claude", anthropic.url, model=model)
    fresh = fresh_project()
    try:
        first = await adapter.qualify(fresh, company("northwind3.com"))
        second = await adapter.qualify(fresh, company("bluegate7.io"))
    finally:
        await adapter.aclose()
    assert first.qualified is expected_qualified("northwind3.com")  # no 400: the fake took the request
    assert second.qualified is expected_qualified("bluegate7.io")
    sent = anthropic.state.calls("/v1/messages")[0].body
    assert ("format" in sent.get("output_config", {})) is profile.structured_outputs
    assert ("tool_choice" in sent) is not profile.structured_outputs
    assert sent.get("output_config", {}).get("effort") == profile.effort_for("low")
    cached = "cache_control" in sent["system"][0]
    if cached:  # the prefix reaches the model's minimum: written once, then read
        assert first.usage.counts["claude_cache_write_tokens"] >= profile.cache_min_tokens
        assert second.usage.counts["claude_cache_read_tokens"] == first.usage.counts["claude_cache_write_tokens"]
        assert "claude_cache_write_tokens" not in second.usage.counts
    else:  # below the minimum caching is not requested at all
        assert profile.cache_min_tokens > 2048
        assert not {"claude_cache_read_tokens", "claude_cache_write_tokens"} & set(second.usage.counts)


async def test_max_tokens_gets_one_retry_with_twice_the_room(claude: ClaudeQualifier, anthropic: FakeServer) -> None:
    anthropic.state.inject("max_tokens")
    verdict = await claude.qualify(project(), company("northwind3.com"))
    assert verdict.qualified is expected_qualified("northwind3.com")
    assert [r.body["max_tokens"] for r in anthropic.state.requests] == [2048, 4096]
    assert verdict.usage.counts["claude_max_tokens_stops"] == 1
    assert verdict.usage.counts["claude_output_tokens"] >= 2048  # the cut answer is paid for too


async def test_max_tokens_twice_is_an_item_error_that_says_why(claude: ClaudeQualifier, anthropic: FakeServer) -> None:
    anthropic.state.inject("max_tokens", times=2)
    with pytest.raises(
        PermanentItemError, match=r"cut off at max_tokens 4096 after 2 tries: thinking at effort low"
    ) as caught:
        await claude.qualify(project(), company("northwind3.com"))
    assert caught.value.usage.counts["claude_max_tokens_stops"] == 2
    assert caught.value.usage.counts["claude_output_tokens"] >= 2048 + 4096
    assert len(anthropic.state.requests) == 2


async def test_a_refusal_is_an_item_error_with_its_reason(claude: ClaudeQualifier, anthropic: FakeServer) -> None:
    anthropic.state.inject("refusal")
    with pytest.raises(
        PermanentItemError, match="refused to answer: general_harms: This request was declined"
    ) as caught:
        await claude.qualify(project(), company("northwind3.com"))
    assert caught.value.usage.counts["claude_refusals"] == 1
    assert caught.value.usage.counts["claude_input_tokens"] > 0
    assert len(anthropic.state.requests) == 1  # a refusal is not retried


async def test_cache_is_keyed_by_the_exact_prefix(claude: ClaudeQualifier) -> None:
    fresh = fresh_project()
    first = await claude.qualify(fresh, company("northwind3.com"))
    again = await claude.qualify(fresh, company("bluegate7.io"))
    other_icp = await claude.qualify(dataclasses.replace(fresh, icp=fresh.icp + "."), company("x1.io"))
    assert first.usage.counts.get("claude_cache_write_tokens", 0) > 0
    assert again.usage.counts.get("claude_cache_read_tokens", 0) > 0
    assert other_icp.usage.counts.get("claude_cache_write_tokens", 0) > 0  # one more character: a new prefix
    assert "claude_cache_read_tokens" not in other_icp.usage.counts


async def test_the_cache_lives_five_minutes_from_its_last_read(claude: ClaudeQualifier, anthropic: FakeServer) -> None:
    now = [1000.0]
    anthropic.state.options["clock"] = lambda: now[0]
    fresh = fresh_project()
    try:
        assert "claude_cache_write_tokens" in (await claude.qualify(fresh, company("a1.io"))).usage.counts
        now[0] += 240  # read at 4 min: refreshed
        assert "claude_cache_read_tokens" in (await claude.qualify(fresh, company("a2.io"))).usage.counts
        now[0] += 240  # 8 min after the write, 4 after the read
        assert "claude_cache_read_tokens" in (await claude.qualify(fresh, company("a3.io"))).usage.counts
        now[0] += 301  # expired
        assert "claude_cache_write_tokens" in (await claude.qualify(fresh, company("a4.io"))).usage.counts
    finally:
        anthropic.state.options.pop("clock")


async def test_concurrent_first_calls_wait_for_the_cache_write(anthropic: FakeServer) -> None:
    """The fake makes an entry readable only once the writing response is ready (as the API does), so
    ten calls sent together would all write it; the adapter sends the first alone."""
    anthropic.state.latency = 0.3
    writes: dict[bool, int] = {}
    for warm_first in (True, False):
        adapter = live_adapter("claude", anthropic.url, warm_cache_first=warm_first, timeout=10.0)
        fresh = fresh_project()
        try:
            verdicts = await asyncio.gather(*(adapter.qualify(fresh, company(f"w{i}.io")) for i in range(10)))
        finally:
            await adapter.aclose()
        writes[warm_first] = sum(1 for v in verdicts if "claude_cache_write_tokens" in v.usage.counts)
    assert writes[True] == 1
    assert writes[False] >= 5  # all that were in flight before the first answer


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


async def test_a_rejected_request_is_an_item_error_and_changes_nothing(
    claude: ClaudeQualifier, anthropic: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    built = claude.request_params

    def with_prefill(*args: Any, **kwargs: Any) -> dict[str, Any]:
        params = built(*args, **kwargs)
        return {**params, "messages": [*params["messages"], {"role": "assistant", "content": '{"qualified":'}]}

    monkeypatch.setattr(claude, "request_params", with_prefill)
    with pytest.raises(PermanentItemError, match="400"):
        await claude.qualify(project(), company())
    monkeypatch.undo()  # no run-time switch: the next request has the table's shape again
    await claude.qualify(project(), company())
    last = anthropic.state.requests[-1].body
    assert "output_config" in last and "tool_choice" not in last and len(last["messages"]) == 1


async def test_a_refused_connection_is_transient() -> None:
    with socket.socket() as sock:  # a port nobody listens on once it is closed
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    adapter = live_adapter("claude", f"http://127.0.0.1:{port}")
    try:
        with pytest.raises(TransientProviderError, match="Claude: connection failed"):
            await adapter.qualify(project(), company())
    finally:
        await adapter.aclose()
