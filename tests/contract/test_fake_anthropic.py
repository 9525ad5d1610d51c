"""The fake Anthropic applies the documented rules that the adapter must follow (sources are cited next
to each rule in src/tam_fakes/anthropic.py). Plain HTTP, so the rules are checked without our adapter."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tam_fakes import FakeServer
from tests.contract.provider_fakes import KEY, fake

HEADERS = {"x-api-key": KEY, "anthropic-version": "2023-06-01"}
LONG_RULES = "Judge each company against the ideal customer profile, criterion by criterion. " * 60  # ~1,200 tokens


@pytest.fixture(scope="module")
def server() -> Iterator[FakeServer]:
    with fake("anthropic") as running:
        yield running


@pytest.fixture
def http(server: FakeServer) -> Iterator[httpx.Client]:
    server.state.reset()
    with httpx.Client(base_url=server.url, headers=HEADERS, timeout=10) as client:
        yield client


def request(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "model": "claude-sonnet-5-5",
        "max_tokens": 2048,
        "output_config": {"effort": "low"},
        "messages": [{"role": "user", "content": "Company: Northwind\nDomain: northwind3.com"}],
    }
    body.update(changes)
    return {k: v for k, v in body.items() if v is not None}


@pytest.mark.parametrize(
    ("setting", "change"),
    [
        ("thinking budget", {"thinking": {"type": "enabled", "budget_tokens": 1024}}),
        ("sampling parameter", {"temperature": 0.0}),
        ("sampling parameter", {"top_p": 0.9}),
        (
            "assistant prefill",
            {"messages": [{"role": "user", "content": "Domain: a.io"}, {"role": "assistant", "content": "{"}]},
        ),
        (
            "forced tool",
            {
                "tools": [{"name": "t", "description": "d", "input_schema": {"type": "object"}}],
                "tool_choice": {"type": "tool", "name": "t"},
            },
        ),
        ("thinking disabled", {"thinking": {"type": "disabled"}}),
    ],
)
def test_sonnet_5_5_answers_the_five_settings_with_400(
    setting: str, change: dict[str, Any], http: httpx.Client
) -> None:
    response = http.post("/v1/messages", json=request(**change))
    assert response.status_code == 400, setting
    assert response.json()["error"]["type"] == "invalid_request_error"
    # ...and the same request without it is fine.
    assert http.post("/v1/messages", json=request()).status_code == 200


def test_between_tools_is_how_sonnet_5_5_turns_thinking_off(http: httpx.Client) -> None:
    body = http.post("/v1/messages", json=request(thinking={"type": "between_tools"}, max_tokens=100)).json()
    assert body["stop_reason"] == "end_turn"
    assert [b["type"] for b in body["content"]] == ["text"]


def test_thinking_at_the_default_effort_fills_a_small_max_tokens(http: httpx.Client) -> None:
    """The request the adapter used to send (max_tokens 300, no effort): adaptive thinking at `high`
    takes it all, for every company."""
    stops = []
    for i in range(30):
        body = http.post(
            "/v1/messages",
            json=request(
                output_config=None, max_tokens=300, messages=[{"role": "user", "content": f"Domain: c{i}.io"}]
            ),
        ).json()
        stops.append(body["stop_reason"])
        assert body["usage"]["output_tokens"] == 300
        assert body["content"][0]["type"] == "thinking"
    assert set(stops) == {"max_tokens"}


def test_at_effort_low_the_answer_fits_and_may_follow_a_thinking_block(http: httpx.Client) -> None:
    kinds = set()
    for i in range(30):
        body = http.post(
            "/v1/messages", json=request(messages=[{"role": "user", "content": f"Domain: d{i}.io"}])
        ).json()
        assert body["stop_reason"] == "end_turn"
        assert body["content"][-1]["type"] == "text"
        kinds.add(tuple(b["type"] for b in body["content"]))
    assert kinds == {("text",), ("thinking", "text")}  # low effort thinks on some, skips on others


def test_effort_and_structured_outputs_only_where_the_model_has_them(http: httpx.Client) -> None:
    fmt = {"type": "json_schema", "schema": {"type": "object"}}
    cases = [
        ("claude-sonnet-4-5", {"effort": "low"}, 400),
        ("claude-sonnet-4-6", {"effort": "xhigh"}, 400),
        ("claude-sonnet-4-6", {"effort": "max"}, 200),
        ("claude-sonnet-4-20250514", {"format": fmt}, 400),
        ("claude-sonnet-4-5", {"format": fmt}, 200),
        ("claude-sonnet-9-9", {"format": fmt}, 404),
    ]
    for model, config, status in cases:
        response = http.post("/v1/messages", json=request(model=model, output_config=config))
        assert response.status_code == status, (model, config, response.text)


def test_a_forced_tool_with_thinking_on_is_refused(http: httpx.Client) -> None:
    tools = {
        "tools": [{"name": "t", "description": "d", "input_schema": {"type": "object"}}],
        "tool_choice": {"type": "tool", "name": "t"},
    }
    # Sonnet 5 thinks by default: forcing a tool needs thinking off.
    assert http.post("/v1/messages", json=request(model="claude-sonnet-5", **tools)).status_code == 400
    off = request(model="claude-sonnet-5", thinking={"type": "disabled"}, **tools)
    assert http.post("/v1/messages", json=off).json()["stop_reason"] == "tool_use"


def cached_request(rules: str, user: str = "Domain: a.io") -> dict[str, Any]:
    system = [{"type": "text", "text": rules, "cache_control": {"type": "ephemeral"}}]
    return request(system=system, messages=[{"role": "user", "content": user}])


def test_a_prefix_under_the_minimum_is_not_cached_and_only_the_counters_say_so(http: httpx.Client) -> None:
    short = f"Short rules {uuid.uuid4()}."
    for _ in range(2):
        response = http.post("/v1/messages", json=cached_request(short))
        assert response.status_code == 200
        usage = response.json()["usage"]
        assert usage["cache_creation_input_tokens"] == 0 and usage["cache_read_input_tokens"] == 0


def test_the_cache_is_keyed_by_the_model_and_the_exact_prefix(http: httpx.Client) -> None:
    rules = f"{uuid.uuid4()} {LONG_RULES}"
    first = http.post("/v1/messages", json=cached_request(rules)).json()["usage"]
    second = http.post("/v1/messages", json=cached_request(rules, "Domain: b.io")).json()["usage"]
    changed = http.post("/v1/messages", json=cached_request(rules + " ")).json()["usage"]
    other_model = http.post("/v1/messages", json={**cached_request(rules), "model": "claude-sonnet-5"}).json()["usage"]
    assert first["cache_creation_input_tokens"] >= 1024 and first["cache_read_input_tokens"] == 0
    assert second["cache_read_input_tokens"] == first["cache_creation_input_tokens"]
    assert second["cache_creation_input_tokens"] == 0
    assert changed["cache_creation_input_tokens"] > 0 and changed["cache_read_input_tokens"] == 0
    assert other_model["cache_creation_input_tokens"] > 0 and other_model["cache_read_input_tokens"] == 0
    # input_tokens are only what comes after the cached prefix.
    assert second["input_tokens"] < 20


def test_the_same_prefix_needs_4096_tokens_on_haiku_4_5(http: httpx.Client) -> None:
    rules = f"{uuid.uuid4()} {LONG_RULES}"
    for _ in range(2):
        body = {**cached_request(rules), "model": "claude-haiku-4-5"}
        body.pop("output_config")
        usage = http.post("/v1/messages", json=body).json()["usage"]
        assert usage["cache_creation_input_tokens"] == 0 and usage["cache_read_input_tokens"] == 0


def test_the_version_header_is_required_and_both_key_headers_work(server: FakeServer, http: httpx.Client) -> None:
    bearer = {"authorization": f"Bearer {KEY}", "anthropic-version": "2026-10-21"}
    assert httpx.post(f"{server.url}/v1/messages", json=request(), headers=bearer).status_code == 200
    assert httpx.post(f"{server.url}/v1/messages", json=request(), headers={"x-api-key": KEY}).status_code == 400
