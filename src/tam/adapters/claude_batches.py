"""ClaudeBatchQualifier: qualify many companies in one Message Batch, at half price.

Each request is exactly the ClaudeQualifier's online request (its request builder), under a custom_id
that is the company id; each result is read by the same code as an online answer. Documented behaviour
(https://platform.claude.com/docs/en/build-with-claude/batch-processing, and the API reference of
create, retrieve, results and cancel):
- at most 100,000 requests and 256 MB per batch; custom_id 1-64 characters of [a-zA-Z0-9_-];
- `request_counts` tallies processing / succeeded / errored / canceled / expired, and requests leave
  `processing` only once the whole batch ends; results (JSONL) only then, not in request order;
- a result is `succeeded` (a Message), `errored` (an error: an `invalid_request_error` will fail again,
  a server error may not), `canceled` or `expired` (not processed within 24 hours): the last two were
  never answered, so they are asked again;
- "50% of standard price" on input and output: usage is recorded under claude_batch_* units.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

import httpx

from tam.adapters.claude import PROVIDER, SETTING, ClaudeQualifier, anthropic_client
from tam.adapters.claude_answers import Attrs, read_message
from tam.adapters.http import classify_status, excerpt, missing_key, reveal
from tam.domain.model import Company, PermanentItemError, Project, TransientProviderError, Usage
from tam.domain.pricing import batch_unit
from tam.ports.providers import BatchAnswer, BatchProgress, BatchQualifier, Verdict

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

API_VERSION = "2023-06-01"
DEFAULT_BASE_URL = "https://api.anthropic.com"
MAX_REQUESTS = 100_000
MAX_BYTES = 256 * 1024 * 1024
# Errors a second try may not repeat (https://platform.claude.com/docs/en/api/errors).
PASSING_ERRORS = {"api_error", "overloaded_error", "rate_limit_error", "timeout_error"}


def custom_id(company_id: UUID) -> str:
    return company_id.hex  # 32 characters of [0-9a-f]


def encode_requests(requests: Iterable[tuple[str, dict[str, Any]]]) -> bytes:
    """The create body, encoded once and sent as is (the SDK would copy and re-validate every request:
    seconds of CPU for tens of thousands). Every request repeats the project's prompt; only the user
    turn differs, so what precedes it is encoded once per run of equal prefixes, not per company, and
    the pieces are joined once."""
    pieces: list[bytes] = [b'{"requests":[']
    shared: dict[str, Any] | None = None
    head = b""
    for n, (cid, params) in enumerate(requests):
        if n:
            pieces.append(b",")
        rest = {k: v for k, v in params.items() if k != "messages"}
        if not rest:
            pieces.append(json.dumps({"custom_id": cid, "params": params}, separators=_COMPACT).encode())
            continue
        if rest != shared:
            shared, head = rest, json.dumps(rest, separators=_COMPACT)[:-1].encode()  # without its "}"
        messages = json.dumps(params.get("messages"), separators=_COMPACT)
        pieces += (b'{"custom_id":', json.dumps(cid).encode(), b',"params":', head, b',"messages":')
        pieces += (messages.encode(), b"}}")
    pieces.append(b"]}")
    return b"".join(pieces)


_COMPACT = (",", ":")


def batch_usage(usage: Usage) -> Usage:
    return Usage({batch_unit(k): v for k, v in usage.counts.items()})


class ClaudeBatchQualifier(BatchQualifier):
    max_requests = MAX_REQUESTS

    def __init__(
        self,
        qualifier: ClaudeQualifier,
        *,
        api_key: Any,
        base_url: str | None = None,
        timeout: float = 300.0,
        connect_timeout: float = 5.0,
    ) -> None:
        self._qualifier = qualifier
        self._api_key = reveal(api_key)
        self._base_url = base_url
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._client: AsyncAnthropic | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._httpx: httpx.AsyncClient | None = None  # for the two big transfers: create and results
        self._httpx_loop: asyncio.AbstractEventLoop | None = None

    def _ensure(self) -> AsyncAnthropic:
        if self._api_key is None:
            raise missing_key(PROVIDER, SETTING)
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = anthropic_client(self._api_key, self._base_url, self._timeout, self._connect_timeout)
            self._loop = loop
        return self._client

    async def _call(self, fn: Any) -> Any:
        import anthropic

        try:
            return await fn()
        except anthropic.APITimeoutError as exc:
            raise TransientProviderError(PROVIDER, "Claude batches: request timed out") from exc
        except anthropic.APIConnectionError as exc:
            raise TransientProviderError(PROVIDER, f"Claude batches: connection failed ({type(exc).__name__})") from exc
        except anthropic.APIStatusError as exc:
            raise self._qualifier._status_error(exc) from exc

    def capacity(self, project: Project, companies: Sequence[Company]) -> int:
        """At most 100,000 requests and 256 MB per batch: the company part of a request is short next to
        the shared prompt, so one request's size (with a tenth more for longer descriptions) sets it."""
        if not companies:
            return 0
        one = len(
            json.dumps(
                {
                    "custom_id": custom_id(companies[0].id),
                    "params": self._qualifier.request_params(project, companies[0]),
                }
            )
        )
        return min(len(companies), self.max_requests, int(MAX_BYTES * 0.9 // (one * 1.1)))

    async def submit(self, project: Project, companies: Sequence[Company]) -> str:
        if not 1 <= len(companies) <= self.max_requests:
            raise ValueError(f"a batch holds 1 to {self.max_requests} requests, not {len(companies)}")
        body = encode_requests((custom_id(c.id), self._qualifier.request_params(project, c)) for c in companies)
        response = await self._http("POST", "/v1/messages/batches", content=body)
        return str(response.json()["id"])

    async def progress(self, batch_id: str) -> BatchProgress:
        client = self._ensure()
        batch = await self._call(lambda: client.messages.batches.retrieve(batch_id))
        c = batch.request_counts
        return BatchProgress(
            batch_id,
            batch.processing_status == "ended",
            c.processing,
            c.succeeded,
            c.errored,
            c.canceled,
            c.expired,
        )

    async def answers(self, batch_id: str) -> AsyncIterator[BatchAnswer]:
        client = self._ensure()
        batch = await self._call(lambda: client.messages.batches.retrieve(batch_id))
        if not batch.results_url:
            raise TransientProviderError(PROVIDER, f"Claude batch {batch_id} has no results yet")
        http = self._plain()
        try:
            async with http.stream("GET", batch.results_url, headers=self._headers()) as response:
                if response.status_code >= 300:
                    await response.aread()
                    raise self._error(response)
                # Each line read as plain JSON with attribute access (what read_message needs), not as
                # SDK models: building those costs far more CPU than the verdict is worth.
                async for text in response.aiter_lines():
                    if not text.strip():
                        continue
                    line = json.loads(text, object_hook=Attrs)
                    try:
                        company_id = UUID(hex=str(line.custom_id))
                    except ValueError:
                        continue  # not one of ours
                    yield self._answer(company_id, line.result)
        except httpx.TimeoutException as exc:
            raise TransientProviderError(PROVIDER, "Claude batches: results timed out") from exc
        except httpx.TransportError as exc:
            raise TransientProviderError(PROVIDER, f"Claude batches: connection failed ({type(exc).__name__})") from exc

    def _answer(self, company_id: UUID, result: Any) -> BatchAnswer:
        if result.type == "succeeded":
            answer = read_message(result.message)
            usage = batch_usage(answer.usage)
            if answer.stop_reason == "refusal":  # the same request online would be refused again
                return BatchAnswer(company_id, error=f"Claude refused to answer: {answer.problem}", usage=usage)
            if answer.problem is not None or answer.qualified is None:
                # cut at max_tokens or not fitting the schema: asked again online (with more room)
                return BatchAnswer(company_id, error=answer.problem, retry=True, usage=usage)
            return BatchAnswer(company_id, Verdict(answer.qualified, answer.reason, usage), usage=usage)
        if result.type == "errored":
            error = getattr(getattr(result, "error", None), "error", None)
            kind = str(getattr(error, "type", "api_error"))
            text = f"Claude batch request errored: {kind} {getattr(error, 'message', '')}".strip()
            return BatchAnswer(company_id, error=text, retry=kind in PASSING_ERRORS)
        return BatchAnswer(company_id, error=f"Claude batch request {result.type}", retry=True)

    def _headers(self) -> dict[str, str]:
        if self._api_key is None:
            raise missing_key(PROVIDER, SETTING)
        return {"x-api-key": self._api_key, "anthropic-version": API_VERSION, "content-type": "application/json"}

    def _plain(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._httpx is None or self._httpx_loop is not loop:
            timeout = httpx.Timeout(self._timeout, connect=self._connect_timeout)
            self._httpx = httpx.AsyncClient(base_url=self._base_url or DEFAULT_BASE_URL, timeout=timeout)
            self._httpx_loop = loop
        return self._httpx

    async def _http(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = self._headers()
        try:
            response = await self._plain().request(method, path, headers=headers, **kwargs)
        except httpx.TimeoutException as exc:
            raise TransientProviderError(PROVIDER, "Claude batches: request timed out") from exc
        except httpx.TransportError as exc:
            raise TransientProviderError(PROVIDER, f"Claude batches: connection failed ({type(exc).__name__})") from exc
        if response.status_code >= 300:
            raise self._error(response)
        return response

    def _error(self, response: httpx.Response) -> Exception:
        status, body = response.status_code, response.text
        error = classify_status(PROVIDER, SETTING, status, body, response.headers)
        return error or PermanentItemError(PROVIDER, f"Claude batches: HTTP {status} {excerpt(body, 160)}")

    async def cancel(self, batch_id: str) -> None:
        client = self._ensure()
        await self._call(lambda: client.messages.batches.cancel(batch_id))

    async def aclose(self) -> None:
        plain, self._httpx = self._httpx, None
        if plain is not None and self._httpx_loop is asyncio.get_running_loop():
            await plain.aclose()
        client, self._client = self._client, None
        if client is not None and self._loop is asyncio.get_running_loop():
            await client.close()
