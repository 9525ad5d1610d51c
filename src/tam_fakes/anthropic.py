"""Fake Anthropic Messages API: POST /v1/messages with structured output or a forced tool."""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tam_fakes.anthropic_batches import routes as batch_routes
from tam_fakes.base import CountInFlight, FakeState, arrive, unit

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    529: "overloaded_error",
}
_DOMAIN = re.compile(r"^Domain:\s*(\S+)", re.MULTILINE)


def expected_qualified(domain: str) -> bool:
    """The fake's verdict for a company, so tests can check what was stored."""
    return unit("qualify", domain) < 0.5


def _error(status: int, kind: str, headers: dict[str, str], message: str | None = None) -> JSONResponse:
    error_type = _ERROR_TYPES.get(status, "invalid_request_error")
    text = message or {"wrong_key": "invalid x-api-key"}.get(kind, f"{error_type} (injected {kind})")
    request_id = _request_id()
    body = {"type": "error", "error": {"type": error_type, "message": text}, "request_id": request_id}
    return JSONResponse(body, status_code=status, headers={"request-id": request_id, **headers})


def _request_id() -> str:
    return "req_" + uuid.uuid4().hex[:24]


def _supports_forced_tool(model: str) -> bool:
    return model.startswith(("claude-sonnet-4", "claude-opus-4", "claude-haiku-4", "claude-3"))


def _supports_structured_output(model: str) -> bool:
    return model != "claude-sonnet-4-20250514" and not model.startswith("claude-3")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return ""


def create_app(state: FakeState) -> Any:
    seen_prefixes: set[str] = set()

    def authorised(request: Request) -> bool:
        key = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
        return key == state.api_key

    async def messages(request: Request) -> Response:
        body, fault, answer = await arrive(request, state, authorised, _error)
        if answer is not None:
            return answer
        if not request.headers.get("anthropic-version"):
            return _error(400, "", {}, "anthropic-version: header is required")
        if not isinstance(body, dict):
            return _error(400, "", {}, "request body must be a JSON object")
        model = body.get("model")
        for required in ("model", "max_tokens", "messages"):
            if required not in body:
                return _error(400, "", {}, f"{required}: Field required")
        if fault is not None and fault.kind == "no_credits":
            return _error(400, "", {}, "Your credit balance is too low to access the Anthropic API.")
        tool_choice = body.get("tool_choice") or {}
        forced = tool_choice.get("type") in ("tool", "any")
        if forced and not _supports_forced_tool(str(model)):
            return _error(400, "", {}, f"tool_choice: forcing tool use is not supported by {model}")
        output_format = (body.get("output_config") or {}).get("format")
        if output_format and not _supports_structured_output(str(model)):
            return _error(400, "", {}, f"output_config.format: structured outputs are not supported on {model}")

        system = _text(body.get("system"))
        user = _text((body["messages"][-1] or {}).get("content")) if body["messages"] else ""
        match = _DOMAIN.search(user)
        domain = match.group(1) if match else user
        verdict: dict[str, Any] = {
            "qualified": expected_qualified(domain),
            "reason": f"{domain} {'fits' if expected_qualified(domain) else 'does not fit'} the ICP (fake).",
        }
        if fault is not None and fault.kind == "bad_schema":
            verdict = {"qualified": "maybe"}
        system_tokens = max(1, len(system) // 4)
        cached = isinstance(body.get("system"), list) and any(
            isinstance(b, dict) and b.get("cache_control") for b in body["system"]
        )
        prefix = hashlib.sha256((str(model) + system).encode()).hexdigest()
        cache_read = cache_write = 0
        if cached and system_tokens >= int(state.options.get("cache_min_tokens", 0)):
            if prefix in seen_prefixes:
                cache_read = system_tokens
            else:
                seen_prefixes.add(prefix)
                cache_write = system_tokens
        usage = {
            "input_tokens": max(1, len(user) // 4) + (0 if (cache_read or cache_write) else system_tokens),
            "output_tokens": 30,
            "cache_creation_input_tokens": cache_write,
            "cache_read_input_tokens": cache_read,
        }
        if forced:
            content: list[dict[str, Any]] = [
                {
                    "type": "tool_use",
                    "id": "toolu_" + uuid.uuid4().hex[:20],
                    "name": tool_choice.get("name") or "tool",
                    "input": verdict,
                }
            ]
            stop = "tool_use"
        else:
            text = json.dumps(verdict)
            if fault is not None and fault.kind == "malformed":
                text = "Sure! This company looks like a good fit."
            content = [{"type": "text", "text": text}]
            stop = "end_turn"
        message = {
            "id": "msg_" + uuid.uuid4().hex[:24],
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage,
        }
        headers = {
            "request-id": _request_id(),
            "anthropic-ratelimit-requests-limit": str(int(state.rate_limit) or 4000),
            "anthropic-ratelimit-requests-remaining": str(state.remaining()),
            "anthropic-ratelimit-requests-reset": "2026-11-29T00:00:00Z",
        }
        return JSONResponse(message, headers=headers)

    app = Starlette(
        routes=[Route("/v1/messages", messages, methods=["POST"]), *batch_routes(state, messages, authorised)]
    )
    return CountInFlight(app, state)
