"""ClaudeQualifier: one Messages call per company, answered as a verdict object {qualified, reason}.

The request shape comes from the model's row in claude_models (structured outputs or a forced tool,
effort and room for thinking, the cache minimum); `request_params` builds it for one company and
`claude_answers.read_message` turns a Message into a verdict and usage, so a batch can reuse both.

Stop reasons (https://platform.claude.com/docs/en/build-with-claude/handling-stop-reasons):
- `end_turn` / `tool_use`: the verdict is read by block type (a `thinking` block may come first:
  https://platform.claude.com/docs/en/models/sonnet-5-5/migration-guide);
- `max_tokens`: thinking and answer together filled `max_tokens`; one retry with twice the room, then
  a permanent item error saying so;
- `refusal`: a permanent item error with the refusal's category and explanation (`stop_details`:
  https://platform.claude.com/docs/en/test-and-evaluate/strengthen-guardrails/handle-streaming-refusals).
Every call's tokens, and each max_tokens stop and refusal, are counted in the usage.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from tam.adapters.claude_answers import TOOL_NAME, VERDICT_SCHEMA, read_message
from tam.adapters.claude_cache import PrefixWarmup, prefix_key, worth_caching
from tam.adapters.claude_messages import (
    MessagesClient,
    MessagesConnectionError,
    MessagesStatusError,
    MessagesTimeout,
)
from tam.adapters.claude_models import profile_for
from tam.adapters.claude_prompt import system_blocks, system_text
from tam.adapters.claude_rate import TokenEstimator, combined, rate_signal
from tam.adapters.http import classify_status, excerpt, missing_key, reveal
from tam.domain.model import (
    NO_USAGE,
    Company,
    Cost,
    CredentialError,
    PermanentItemError,
    Project,
    RateSignal,
    TransientProviderError,
)
from tam.ports.providers import LLMQualifier, Verdict

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

PROVIDER = "Claude"
SETTING = "ANTHROPIC_API_KEY"


def anthropic_client(api_key: str, base_url: str | None, timeout: float, connect_timeout: float) -> AsyncAnthropic:
    """The SDK client of the batch adapter, built on the running loop (the online calls go through
    `MessagesClient`, which takes its URL and headers from the SDK)."""
    import anthropic  # ~1 s to import: only when a qualify job actually runs

    return anthropic.AsyncAnthropic(
        api_key=api_key,
        base_url=base_url,
        # The job runner owns retries and backoff; the SDK would sleep any retry-after, uncapped.
        max_retries=0,
        timeout=anthropic.Timeout(timeout, connect=connect_timeout),
        # aiohttp under the SDK: about a quarter less CPU per call than its default transport.
        http_client=anthropic.DefaultAioHttpClient(),
    )


class ClaudeQualifier(LLMQualifier):
    def __init__(
        self,
        *,
        api_key: Any,
        model: str,
        base_url: str | None = None,
        effort: str = "low",
        concurrency: int = 10,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        malformed_retries: int = 1,
        max_tokens_retries: int = 1,
        warm_cache_first: bool = True,
    ) -> None:
        self._api_key = reveal(api_key)
        self._model = model
        self._profile = profile_for(model)
        self._effort = self._profile.effort_for(effort)
        self._base_url = base_url
        self._concurrency = concurrency
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._malformed_retries = malformed_retries
        self._max_tokens_retries = max_tokens_retries
        self._warm_first = warm_cache_first
        self._warmup = PrefixWarmup()
        self._tokens = TokenEstimator()
        self._client: MessagesClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def _messages(self) -> MessagesClient:
        """The Messages client of the running loop, opened on first use (and again on another loop)."""
        if self._api_key is None:
            raise missing_key(PROVIDER, SETTING)
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            self._client = await MessagesClient.open(
                self._api_key, self._base_url, self._timeout, self._connect_timeout
            )
            self._loop = loop
        return self._client

    def request_params(self, project: Project, company: Company, *, attempt: int = 0) -> dict[str, Any]:
        """The Messages request body for one company; `attempt` n > 0 gives 2^n times the room."""
        profile = self._profile
        prefix = system_text(project.name, project.icp)
        params: dict[str, Any] = {
            "model": self._model,
            "max_tokens": profile.max_tokens(self._effort, attempt),
            "system": system_blocks(project.name, project.icp, cache=worth_caching(profile, prefix)),
            "messages": [{"role": "user", "content": describe(company)}],
        }
        output_config: dict[str, Any] = {}
        if self._effort is not None:
            output_config["effort"] = self._effort
        if profile.structured_outputs:
            output_config["format"] = {"type": "json_schema", "schema": VERDICT_SCHEMA}
        else:  # older models: the verdict comes as the input of a tool the model must call
            params["tools"] = [
                {"name": TOOL_NAME, "description": "Record the qualification verdict.", "input_schema": VERDICT_SCHEMA}
            ]
            params["tool_choice"] = {"type": "tool", "name": TOOL_NAME}
        if output_config:
            params["output_config"] = output_config
        if profile.thinks_by_default:
            params["thinking"] = {"type": "adaptive"}  # the default, said explicitly; effort sets its depth
        return params

    def cost(self, project: Project, company: Company) -> Cost:
        return self._tokens.cost(self.request_params(project, company))

    async def qualify(self, project: Project, company: Company) -> Verdict:
        usage, room, malformed = NO_USAGE, 0, 0
        signal: RateSignal | None = None
        while True:
            message, rate = await self._create(self.request_params(project, company, attempt=room))
            signal = combined(signal, rate)  # every Messages call of this qualify counts
            answer = read_message(message)
            usage = usage + answer.usage
            if answer.stop_reason == "refusal":
                raise PermanentItemError(PROVIDER, f"Claude refused to answer: {answer.problem}", usage=usage)
            if answer.stop_reason == "max_tokens":
                params_max = self._profile.max_tokens(self._effort, room)
                if room < self._max_tokens_retries:
                    room += 1
                    continue
                raise PermanentItemError(
                    PROVIDER,
                    f"Claude's answer was cut off at max_tokens {params_max} after {room + 1} tries: "
                    f"thinking at effort {self._effort or 'default'} and the verdict did not fit",
                    usage=usage,
                )
            if answer.problem is not None:
                malformed += 1
                if malformed <= self._malformed_retries:
                    continue
                raise PermanentItemError(
                    PROVIDER, f"Claude gave no usable verdict after {malformed} tries: {answer.problem}", usage=usage
                )
            assert answer.qualified is not None
            return Verdict(answer.qualified, answer.reason, usage, signal)

    async def _create(self, params: dict[str, Any]) -> tuple[Any, RateSignal]:
        client = await self._messages()
        cached = self._warm_first and any("cache_control" in block for block in params["system"])
        key = prefix_key(self._model, params["system"][0]["text"]) if cached else None
        try:
            async with self._warmup.call(key):
                message, headers = await client.create(params)
        except MessagesTimeout as exc:
            raise TransientProviderError(PROVIDER, "Claude: request timed out") from exc
        except MessagesConnectionError as exc:
            raise TransientProviderError(PROVIDER, f"Claude: connection failed ({exc})") from exc
        except MessagesStatusError as exc:
            raise status_error(exc.status, exc.body, exc.headers) from exc
        if message is None:  # a body that is not a Message: read_message reports it; it is retried once
            return None, RateSignal(spent=Cost(1))
        usage = message.usage
        self._tokens.learn(params, usage)
        return message, rate_signal(headers, usage)

    def _status_error(self, exc: Any) -> CredentialError | TransientProviderError | PermanentItemError:
        """An SDK APIStatusError (the batch adapter's calls) mapped as an online answer's status."""
        return status_error(int(exc.status_code), exc.response.text, exc.response.headers)

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._loop is asyncio.get_running_loop():
            await client.aclose()


def status_error(
    status: int, body: str, headers: Mapping[str, str]
) -> CredentialError | TransientProviderError | PermanentItemError:
    error = classify_status(PROVIDER, SETTING, status, body, headers)
    if error is not None:
        return error
    return PermanentItemError(PROVIDER, f"Claude: HTTP {status} {excerpt(body, 160)}")


def describe(company: Company) -> str:
    lines = [f"Company: {company.name}", f"Domain: {company.domain}"]
    if company.description:
        lines.append(f"Description: {company.description}")
    if company.country:
        lines.append(f"Country: {company.country}")
    if company.employee_range:
        lines.append(f"Employees: {company.employee_range}")
    return "\n".join(lines)
