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
from collections.abc import AsyncIterator, Sequence
from typing import TYPE_CHECKING, Any
from uuid import UUID

from tam.adapters.claude import PROVIDER, SETTING, ClaudeQualifier, read_message
from tam.adapters.http import missing_key, reveal
from tam.domain.model import Company, Project, TransientProviderError, Usage
from tam.domain.pricing import batch_unit
from tam.ports.providers import BatchAnswer, BatchProgress, BatchQualifier, Verdict

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

MAX_REQUESTS = 100_000
# Errors a second try may not repeat (https://platform.claude.com/docs/en/api/errors).
PASSING_ERRORS = {"api_error", "overloaded_error", "rate_limit_error", "timeout_error"}


def custom_id(company_id: UUID) -> str:
    return company_id.hex  # 32 characters of [0-9a-f]


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

    def _ensure(self) -> AsyncAnthropic:
        if self._api_key is None:
            raise missing_key(PROVIDER, SETTING)
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            import anthropic

            self._client = anthropic.AsyncAnthropic(
                api_key=self._api_key,
                base_url=self._base_url,
                max_retries=0,  # the job owns retries
                timeout=anthropic.Timeout(self._timeout, connect=self._connect_timeout),
            )
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

    async def submit(self, project: Project, companies: Sequence[Company]) -> str:
        if not 1 <= len(companies) <= self.max_requests:
            raise ValueError(f"a batch holds 1 to {self.max_requests} requests, not {len(companies)}")
        client = self._ensure()
        build = self._qualifier.request_params
        requests = [{"custom_id": custom_id(c.id), "params": build(project, c)} for c in companies]
        batch = await self._call(lambda: client.messages.batches.create(requests=requests))  # type: ignore[arg-type]
        return str(batch.id)

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
        lines = await self._call(lambda: client.messages.batches.results(batch_id))
        async for line in lines:
            try:
                company_id = UUID(hex=line.custom_id)
            except ValueError:
                continue  # not one of ours
            yield self._answer(company_id, line.result)

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

    async def cancel(self, batch_id: str) -> None:
        client = self._ensure()
        await self._call(lambda: client.messages.batches.cancel(batch_id))

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._loop is asyncio.get_running_loop():
            await client.close()
