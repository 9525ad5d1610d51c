"""The Messages client takes its proxy from the environment once, as the SDK's transports did."""

from __future__ import annotations

import pytest

from tam.adapters.claude_messages import env_proxy

URL = "https://api.anthropic.com/v1/messages"


@pytest.fixture(autouse=True)
def no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)


def test_no_proxy_configured() -> None:
    assert env_proxy(URL) is None


def test_https_proxy_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    assert env_proxy(URL) == "http://proxy.internal:3128"
    assert env_proxy("http://127.0.0.1:8080/v1/messages") is None  # an http URL takes HTTP_PROXY


def test_no_proxy_exempts_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.internal:3128")
    monkeypatch.setenv("NO_PROXY", "api.anthropic.com")
    assert env_proxy(URL) is None
