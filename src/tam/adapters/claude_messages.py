"""One Messages API call (`POST /v1/messages`) on aiohttp, without the SDK's per-request machinery.

Why not `client.messages.create`: with a vendor that answers at once, the anthropic SDK spends about
1.2 ms of CPU per call on this machine even on its aiohttp transport (request options copied and
transformed, an httpx request and response built around aiohttp's, headers merged case-insensitively,
the body validated into pydantic models), against about 0.3 ms for the same request on aiohttp alone
(`bench/bench_claude_client.py`). CPU is what bounds a worker, and the whole pipeline is meant to
cost under 1 ms per company (docs/benchmarks.md).

What the SDK still decides: the URL (`base_url`, or ANTHROPIC_BASE_URL) and every header it would
send (API version, authentication, user agent), read once from an SDK client that never sends
anything. What the SDK's errors meant is kept, for the adapter to map as before:
- no answer within the connect or read timeout → `MessagesTimeout` (the SDK's APITimeoutError);
- any other failure to get an answer → `MessagesConnectionError` (APIConnectionError);
- an answer with a status of 300 or more → `MessagesStatusError` with status, body text and headers
  (APIStatusError);
- a 2xx body that is not a JSON object → the message is None (APIResponseValidationError).
A Message is returned as plain JSON with attribute access (`Attrs`), what `read_message` reads.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from tam.adapters.claude_answers import Attrs

_COMPACT = (",", ":")


class MessagesTimeout(Exception):
    """No answer within the connect or read timeout."""


class MessagesConnectionError(Exception):
    """The request could not be sent or its answer could not be read."""


class MessagesStatusError(Exception):
    def __init__(self, status: int, body: str, headers: Mapping[str, str]) -> None:
        super().__init__(f"HTTP {status}")
        self.status = status
        self.body = body
        self.headers = headers


class MessagesClient:
    """A keep-alive aiohttp session for one event loop, sending the SDK's headers."""

    def __init__(self, url: str, headers: Mapping[str, str], read_timeout: float, connect_timeout: float) -> None:
        import aiohttp

        self.url = url
        self.headers = dict(headers)
        self._session = aiohttp.ClientSession(
            # As the SDK's httpx timeout: `read_timeout` for the pool and for each read, `connect_timeout`
            # to open a connection; no bound on the whole call (a long answer keeps arriving).
            timeout=aiohttp.ClientTimeout(
                total=None, connect=read_timeout, sock_connect=connect_timeout, sock_read=read_timeout
            ),
            connector=aiohttp.TCPConnector(limit=1000),  # the SDK's connection limit; the pacer bounds calls
            skip_auto_headers=("User-Agent",),  # the SDK's user agent, from `headers`
        )
        # HTTP(S)_PROXY and NO_PROXY, as the SDK's clients honour them, read once: aiohttp's
        # trust_env reads the whole environment again on every request (more CPU than the request).
        self._proxy = env_proxy(url)

    @classmethod
    async def open(
        cls, api_key: str, base_url: str | None, read_timeout: float, connect_timeout: float
    ) -> MessagesClient:
        import anthropic

        sdk = anthropic.AsyncAnthropic(api_key=api_key, base_url=base_url, max_retries=0)
        try:
            headers = {k: v for k, v in sdk.default_headers.items() if isinstance(v, str)}
            url = str(sdk.base_url).rstrip("/") + "/v1/messages"
        finally:
            await sdk.close()
        headers["X-Stainless-Async"] = "async:asyncio"
        return cls(url, headers, read_timeout, connect_timeout)

    async def create(self, params: Mapping[str, Any]) -> tuple[Any, Mapping[str, str]]:
        """The Message (None when the body is not a JSON object) and the answer's headers."""
        import aiohttp

        data = json.dumps(params, separators=_COMPACT).encode()
        try:
            async with self._session.post(self.url, data=data, headers=self.headers, proxy=self._proxy) as response:
                body = await response.read()
                status, headers = response.status, response.headers
        except TimeoutError as exc:  # aiohttp's connect and read timeouts are TimeoutErrors
            raise MessagesTimeout(str(exc) or type(exc).__name__) from exc
        except (aiohttp.ClientError, OSError) as exc:
            raise MessagesConnectionError(type(exc).__name__) from exc
        if status >= 300:
            raise MessagesStatusError(status, body.decode("utf-8", "replace"), headers)
        try:
            message = json.loads(body, object_hook=Attrs)
        except ValueError:  # not JSON (UnicodeDecodeError is a ValueError too)
            return None, headers
        return (message if isinstance(message, dict) else None), headers

    @property
    def closed(self) -> bool:
        return bool(self._session.closed)

    async def aclose(self) -> None:
        await self._session.close()


def env_proxy(url: str) -> str | None:
    """The proxy the environment names for `url` (HTTPS_PROXY / HTTP_PROXY / ALL_PROXY), unless
    NO_PROXY exempts its host."""
    parts = urlsplit(url)
    proxies = urllib.request.getproxies()
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or urllib.request.proxy_bypass(parts.hostname or ""):
        return None
    return proxy
