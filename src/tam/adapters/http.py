"""What every vendor adapter shares: one error taxonomy and a lazily built, loop-bound HTTP client.

- 401/403/402 and "no credits" / monthly-limit answers are CredentialError naming the variable;
- 408/429/529/5xx, timeouts and connection errors are TransientProviderError with `retry_after`;
- anything else (400 validation, 404, no match) is returned to the adapter, which knows whether
  it means "nothing found" or a per-item PermanentItemError.
"""

from __future__ import annotations

import asyncio
import email.utils
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import httpx

from tam.domain.model import CredentialError, PermanentItemError, TransientProviderError

# Answers that mean the account, not the request, is the problem (matched case-insensitively).
_ACCOUNT_MARKERS = (
    "insufficient_credits",
    "no credits",
    "not enough credits",
    "out of credits",
    "monthly usage limit",
    "account_restricted",
    "account is suspended",
    "enforced_spend_limit_reached",
    "credit balance is too low",
)
TRANSIENT_STATUSES = frozenset({408, 409, 425, 429, 529})
# A 402/403 that means "your plan does not include this" (DiscoLike's PlanAccessError, Prospeo's
# PLAN_REQUIRED): the key works, the plan is the problem.
_PLAN_MARKERS = ("plan", "upgrade", "subscription", "not included", "not available on")


class _Secret(Protocol):
    def get_secret_value(self) -> str: ...


def reveal(key: str | _Secret | None) -> str | None:
    """Accepts a plain string or a pydantic SecretStr; an empty key counts as missing."""
    if key is None:
        return None
    text = key if isinstance(key, str) else key.get_secret_value()
    return text.strip() or None


def parse_retry_after(headers: Mapping[str, str]) -> float | None:
    """`retry-after-ms` (Anthropic), `retry-after` in seconds, or `retry-after` as an HTTP date."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return max(float(ms) / 1000.0, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def is_account_problem(text: str) -> bool:
    lowered = text.lower()
    return any(marker in lowered for marker in _ACCOUNT_MARKERS)


def is_plan_problem(text: str) -> bool:
    lowered = text.lower()
    return any(marker in lowered for marker in _PLAN_MARKERS)


def excerpt(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def classify_status(
    provider: str, setting: str, status: int, body: str, headers: Mapping[str, str]
) -> CredentialError | TransientProviderError | None:
    """The taxonomy for one HTTP answer; None means the adapter decides (2xx, 400, 404, 422...)."""
    if status in (401, 403, 402) or (status >= 400 and is_account_problem(body)):
        what = "was rejected" if status in (401, 403) else "has no usable credits or quota"
        if status in (402, 403) and not is_account_problem(body) and is_plan_problem(body):
            what = "works, but its plan does not include this"
        return CredentialError(
            provider,
            f"{provider}: the API key in {setting} {what} (HTTP {status}: {excerpt(body, 120)})",
            setting=setting,
        )
    if status in TRANSIENT_STATUSES or status >= 500:
        return TransientProviderError(
            provider,
            f"{provider}: HTTP {status} {excerpt(body, 120)}",
            retry_after=parse_retry_after(headers),
            throttled=status == 429,
        )
    return None


def missing_key(provider: str, setting: str) -> CredentialError:
    return CredentialError(provider, f"{provider}: {setting} is not set", setting=setting)


class VendorHttp:
    """An httpx.AsyncClient for one vendor, built on first use on the running loop (never at
    import or container build) and rebuilt if a later call runs on another loop."""

    def __init__(
        self,
        *,
        provider: str,
        setting: str,
        base_url: str,
        api_key: str | _Secret | None,
        auth_headers: Callable[[str], dict[str, str]],
        concurrency: int = 10,
        connect_timeout: float = 5.0,
        read_timeout: float = 30.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.provider = provider
        self.setting = setting
        self._base_url = base_url.rstrip("/")
        self._api_key = reveal(api_key)
        self._auth_headers = auth_headers
        self._concurrency = max(1, concurrency)
        self._timeout = httpx.Timeout(read_timeout, connect=connect_timeout)
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _ensure(self) -> httpx.AsyncClient:
        if self._api_key is None:
            raise missing_key(self.provider, self.setting)
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop or self._client.is_closed:
            self._client = httpx.AsyncClient(
                base_url=self._base_url,
                headers={**self._auth_headers(self._api_key), "accept": "application/json"},
                timeout=self._timeout,
                # Pool sized to the concurrency limit: a slot never waits on a connection.
                limits=httpx.Limits(max_connections=self._concurrency + 2, max_keepalive_connections=self._concurrency),
                transport=self._transport,
            )
            self._loop = loop
        return self._client

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Any = None,
        json: Any = None,
    ) -> httpx.Response:
        """Sends one request; raises Credential/Transient errors, returns every other answer."""
        client = self._ensure()
        try:
            response = await client.request(method, path, params=params, json=json)
        except httpx.TimeoutException as exc:
            raise TransientProviderError(self.provider, f"{self.provider}: {type(exc).__name__} (timed out)") from exc
        except httpx.TransportError as exc:
            raise TransientProviderError(self.provider, f"{self.provider}: connection failed ({exc!r})") from exc
        error = classify_status(self.provider, self.setting, response.status_code, response.text, response.headers)
        if error is not None:
            raise error
        return response

    def json(self, response: httpx.Response) -> Any:
        """The body as JSON; a body that is not JSON on a success is a per-item error."""
        try:
            return response.json()
        except ValueError as exc:
            raise PermanentItemError(
                self.provider, f"{self.provider}: malformed answer (HTTP {response.status_code})"
            ) from exc

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and not client.is_closed and self._loop is asyncio.get_running_loop():
            await client.aclose()
