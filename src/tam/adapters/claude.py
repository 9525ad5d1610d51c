"""ClaudeQualifier: one Messages call per company, structured output {qualified, reason}."""

from __future__ import annotations

import asyncio
import json
from typing import TYPE_CHECKING, Any

from tam.adapters.http import classify_status, excerpt, is_account_problem, missing_key, reveal
from tam.domain.model import (
    Company,
    CredentialError,
    PermanentItemError,
    Pressure,
    Project,
    TransientProviderError,
    Usage,
)
from tam.ports.providers import LLMQualifier, Verdict

if TYPE_CHECKING:
    from anthropic import AsyncAnthropic

PROVIDER = "Claude"
SETTING = "ANTHROPIC_API_KEY"
TOOL_NAME = "record_verdict"

VERDICT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "qualified": {"type": "boolean", "description": "true when the company fits the ICP"},
        "reason": {"type": "string", "description": "one or two sentences citing the deciding facts"},
    },
    "required": ["qualified", "reason"],
    "additionalProperties": False,
}

RULES = """You qualify companies for a B2B go-to-market team against the ideal customer profile (ICP) below.
Rules:
- Judge only from the facts given (name, domain, description, country, size) and what the domain implies.
- qualified = true only when the company plausibly matches the ICP's industry, customer type and size.
- When the facts are too thin to tell, answer qualified = false and say what is missing.
- reason: at most two short sentences naming the facts that decided it. No preamble.
- Answer with the verdict object only."""


def uses_forced_tool(model: str) -> bool:
    """Sonnet 4.x predates structured outputs on some ids; newer models refuse forced tools."""
    return model.startswith("claude-sonnet-4-")


class ClaudeQualifier(LLMQualifier):
    def __init__(
        self,
        *,
        api_key: Any,
        model: str,
        base_url: str | None = None,
        concurrency: int = 10,
        timeout: float = 60.0,
        connect_timeout: float = 5.0,
        max_tokens: int = 300,
        malformed_retries: int = 1,
    ) -> None:
        self._api_key = reveal(api_key)
        self._model = model
        self._base_url = base_url
        self._concurrency = concurrency
        self._timeout = timeout
        self._connect_timeout = connect_timeout
        self._max_tokens = max_tokens
        self._malformed_retries = malformed_retries
        self._forced_tool = uses_forced_tool(model)
        self._client: AsyncAnthropic | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def _ensure(self) -> AsyncAnthropic:
        if self._api_key is None:
            raise missing_key(PROVIDER, SETTING)
        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop:
            import anthropic  # ~1 s to import: only when a qualify job actually runs

            self._client = anthropic.AsyncAnthropic(
                api_key=self._api_key,
                base_url=self._base_url,
                # The job runner owns retries and backoff; the SDK would sleep any retry-after, uncapped.
                max_retries=0,
                timeout=anthropic.Timeout(self._timeout, connect=self._connect_timeout),
            )
            self._loop = loop
        return self._client

    async def qualify(self, project: Project, company: Company) -> Verdict:
        usage = Usage()
        attempts = 1 + self._malformed_retries
        problem = ""
        for _ in range(attempts):
            try:
                message, pressure = await self._create(project, company)
                usage = usage + _usage(message)
                qualified, reason = self._verdict(message)
            except ValueError as exc:  # unparseable body or a verdict that does not fit the schema
                problem = str(exc) or type(exc).__name__
                continue
            return Verdict(qualified, reason, usage, pressure)
        raise PermanentItemError(PROVIDER, f"Claude gave no usable verdict after {attempts} tries: {problem}")

    def _request(self, project: Project, company: Company) -> dict[str, Any]:
        system = [
            {
                "type": "text",
                "text": f"{RULES}\n\nICP of project {project.name!r}:\n{project.icp.strip()}",
                # The rules and ICP are the same for every company of a job: cache them.
                "cache_control": {"type": "ephemeral"},
            }
        ]
        request: dict[str, Any] = {
            "model": self._model,
            "max_tokens": self._max_tokens,
            "system": system,
            "messages": [{"role": "user", "content": describe(company)}],
        }
        if self._forced_tool:
            request["tools"] = [
                {"name": TOOL_NAME, "description": "Record the qualification verdict.", "input_schema": VERDICT_SCHEMA}
            ]
            request["tool_choice"] = {"type": "tool", "name": TOOL_NAME}
        else:
            request["output_config"] = {"format": {"type": "json_schema", "schema": VERDICT_SCHEMA}}
        return request

    async def _create(self, project: Project, company: Company) -> tuple[Any, Pressure]:
        import anthropic

        client = self._ensure()
        while True:
            forced = self._forced_tool
            try:
                raw = await client.messages.with_raw_response.create(**self._request(project, company))
                return await raw.parse(), self._pressure(raw.headers)
            except anthropic.APITimeoutError as exc:
                raise TransientProviderError(PROVIDER, "Claude: request timed out") from exc
            except anthropic.APIConnectionError as exc:
                raise TransientProviderError(PROVIDER, f"Claude: connection failed ({type(exc).__name__})") from exc
            except anthropic.APIStatusError as exc:
                if not forced and _refuses_structured_output(exc):
                    self._forced_tool = True  # this model has no structured outputs: use the forced tool
                    continue
                raise self._status_error(exc) from exc
            except anthropic.APIResponseValidationError as exc:
                raise ValueError("malformed response body") from exc

    def _pressure(self, headers: Any) -> Pressure:
        """NEAR when the rate limit is nearly spent: fewer requests left than a tenth of the calls this
        adapter may have in flight (a larger margin would hold the pace below the limit when the
        provider's bucket is small)."""
        try:
            remaining = int(headers.get("anthropic-ratelimit-requests-remaining", ""))
        except ValueError:
            return Pressure.EASY
        return Pressure.NEAR if remaining < max(1, self._concurrency // 10) else Pressure.EASY

    def _status_error(self, exc: Any) -> CredentialError | TransientProviderError | PermanentItemError:
        status = int(exc.status_code)
        body = exc.response.text
        error = classify_status(PROVIDER, SETTING, status, body, exc.response.headers)
        if error is not None:
            return error
        return PermanentItemError(PROVIDER, f"Claude: HTTP {status} {excerpt(body, 160)}")

    def _verdict(self, message: Any) -> tuple[bool, str]:
        data: Any = None
        for block in message.content:
            if block.type == "tool_use" and block.name == TOOL_NAME:
                data = block.input
                break
            if block.type == "text" and block.text.strip():
                try:
                    data = json.loads(block.text)
                except ValueError:
                    raise ValueError(f"not JSON: {excerpt(block.text, 80)!r}") from None
                break
        if not isinstance(data, dict):
            raise ValueError(f"no verdict in the answer (stop_reason {message.stop_reason})")
        qualified, reason = data.get("qualified"), data.get("reason")
        if not isinstance(qualified, bool) or not isinstance(reason, str) or not reason.strip():
            raise ValueError(f"answer does not fit the schema: {excerpt(json.dumps(data), 80)}")
        return qualified, reason.strip()

    async def aclose(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._loop is asyncio.get_running_loop():
            await client.close()


def describe(company: Company) -> str:
    lines = [f"Company: {company.name}", f"Domain: {company.domain}"]
    if company.description:
        lines.append(f"Description: {company.description}")
    if company.country:
        lines.append(f"Country: {company.country}")
    if company.employee_range:
        lines.append(f"Employees: {company.employee_range}")
    return "\n".join(lines)


def _usage(message: Any) -> Usage:
    u = getattr(message, "usage", None)
    if u is None:
        return Usage()
    return Usage.of(
        claude_input_tokens=int(getattr(u, "input_tokens", 0) or 0),
        claude_output_tokens=int(getattr(u, "output_tokens", 0) or 0),
        claude_cache_read_tokens=int(getattr(u, "cache_read_input_tokens", 0) or 0),
        claude_cache_write_tokens=int(getattr(u, "cache_creation_input_tokens", 0) or 0),
    )


def _refuses_structured_output(exc: Any) -> bool:
    body = exc.response.text
    return int(exc.status_code) == 400 and "output_config" in body and not is_account_problem(body)
