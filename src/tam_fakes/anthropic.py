"""Fake Anthropic Messages API: POST /v1/messages, holding clients to the documented per-model rules.

Each rule is one function below, next to the page it comes from:
- model table (ids, what each accepts): `MODELS`;
- request checks (each a 400 `invalid_request_error`, or a 404 for an unknown model): `REQUEST_RULES`;
- thinking counted against `max_tokens` by effort: `thinking_tokens`, `generate`;
- prompt caching (minimum length, exact-prefix key, 5-minute or 1-hour lifetime, readable only once the
  writing response has begun): `anthropic_cache.PromptCache`;
- rate-limit headers: `rate_headers`.
Token counts are characters divided by a per-model ratio: a stand-in for the tokenizer, close enough
for the limits above (the Sonnet 5 tokenizer counts about 30% more tokens for the same text:
https://platform.claude.com/docs/en/models/sonnet-5/migration-guide).
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tam_fakes.anthropic_batches import routes as batch_routes
from tam_fakes.anthropic_cache import PromptCache
from tam_fakes.base import CountInFlight, FakeState, arrive, read_body, unit
from tam_fakes.ratelimit import anthropic_budgets, charge_message

_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    429: "rate_limit_error",
    500: "api_error",
    502: "api_error",
    503: "api_error",
    529: "overloaded_error",
}
_DOMAIN = re.compile(r"^Domain:\s*(\S+)", re.MULTILINE)
EFFORTS = ("low", "medium", "high", "xhigh", "max")
SAMPLING = ("temperature", "top_p", "top_k")


@dataclass(frozen=True, slots=True)
class ModelRules:
    structured_outputs: bool  # output_config.format
    forced_tool: bool  # tool_choice {"type": "tool"|"any"}
    thinks_by_default: bool  # adaptive thinking when the request has no `thinking`
    thinking_types: frozenset[str]  # accepted thinking.type values
    efforts: tuple[str, ...]  # accepted output_config.effort values (empty: effort refused)
    sampling: str  # "any", "default_only" (non-default values refused), "refused" (any value refused)
    prefill: bool  # a last assistant turn is accepted
    cache_min_tokens: int
    chars_per_token: float
    max_output: int


# Sources: Sonnet 5.5 https://platform.claude.com/docs/en/models/sonnet-5-5/migration-guide and
# .../whats-new-sonnet-5-5 (five settings return 400: thinking budgets, sampling parameters, assistant
# prefill, forced tool choice, thinking disabled; thinking types adaptive and between_tools);
# Sonnet 5 https://platform.claude.com/docs/en/models/sonnet-5/migration-guide (adaptive on by default,
# budgets and non-default sampling return 400); prefill removed on 4.6 models
# https://platform.claude.com/docs/en/about-claude/models/migration-guide ; effort per model
# https://platform.claude.com/docs/en/build-with-claude/effort ; structured outputs per model
# https://platform.claude.com/docs/en/build-with-claude/structured-outputs ; cache minimums
# https://platform.claude.com/docs/en/build-with-claude/prompt-caching (Sonnet 4.6: 2,048 as observed in
# https://github.com/anthropics/anthropic-sdk-python/issues/1194, the stricter of the two figures).
_ADAPTIVE = frozenset({"adaptive", "between_tools"})
_LEGACY = frozenset({"enabled", "disabled"})
_NEWEST = {
    "structured_outputs": True,
    "thinks_by_default": True,
    "efforts": EFFORTS,
    "prefill": False,
    "cache_min_tokens": 1024,
    "chars_per_token": 3.1,
    "max_output": 128_000,
}
_OLDER = {
    "structured_outputs": True,
    "forced_tool": True,
    "thinks_by_default": False,
    "thinking_types": _LEGACY,
    "efforts": (),
    "sampling": "any",
    "prefill": True,
    "cache_min_tokens": 1024,
    "chars_per_token": 4.0,
    "max_output": 64_000,
}
MODELS: dict[str, ModelRules] = {}
for _ids, _rules in (
    (("claude-sonnet-5-5",), {**_NEWEST, "forced_tool": False, "thinking_types": _ADAPTIVE, "sampling": "refused"}),
    (("claude-sonnet-5",), {**_NEWEST, "forced_tool": True, "thinking_types": frozenset({"adaptive", "disabled"}),
                            "sampling": "default_only"}),
    (("claude-sonnet-4-6",), {**_OLDER, "thinking_types": _LEGACY | {"adaptive"},
                              "efforts": ("low", "medium", "high", "max"), "prefill": False, "cache_min_tokens": 2048}),
    (("claude-sonnet-4-5", "claude-sonnet-4-5-20250929"), _OLDER),
    (("claude-sonnet-4-20250514", "claude-3-7-sonnet-20250219"), {**_OLDER, "structured_outputs": False}),
    (("claude-haiku-4-5", "claude-haiku-4-5-20251001"), {**_OLDER, "cache_min_tokens": 4096}),
    (("claude-3-5-haiku-latest", "claude-3-5-haiku-20241022", "claude-3-haiku-20240307"),
     {**_OLDER, "structured_outputs": False, "thinking_types": frozenset({"disabled"}), "cache_min_tokens": 2048,
      "max_output": 8192}),
):  # fmt: skip
    MODELS.update(dict.fromkeys(_ids, ModelRules(**_rules)))


def expected_qualified(domain: str) -> bool:
    """The fake's verdict for a company, so tests can check what was stored."""
    return unit("qualify", domain) < 0.5


def asked_domain(body: Any) -> str | None:
    """The company a Messages request asks about (tests tell which company was asked twice)."""
    if not isinstance(body, dict) or not body.get("messages"):
        return None
    match = _DOMAIN.search(_user_text(body))
    return match.group(1) if match else None


def count_tokens(rules: ModelRules, text: str) -> int:
    return max(1, round(len(text) / rules.chars_per_token)) if text else 0


# --- request rules: each returns the 400 message, or None when the request passes ---------------------


def _thinking_type(body: dict[str, Any]) -> str | None:
    thinking = body.get("thinking")
    return str(thinking.get("type")) if isinstance(thinking, dict) else None


def check_max_tokens(rules: ModelRules, body: dict[str, Any]) -> str | None:
    value = body.get("max_tokens")
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        return "max_tokens: Input should be a positive integer"
    if value > rules.max_output:
        return f"max_tokens: {value} > {rules.max_output}, which is the maximum allowed for {body['model']}"
    return None


def check_thinking(rules: ModelRules, body: dict[str, Any]) -> str | None:
    """Sonnet 5.5: thinking budgets (`enabled`) and `disabled` return 400; `between_tools` replaces it."""
    kind = _thinking_type(body)
    if kind is not None and kind not in rules.thinking_types:
        return f'thinking.type: "{kind}" is not supported for this model; use one of {sorted(rules.thinking_types)}'
    return None


def check_sampling(rules: ModelRules, body: dict[str, Any]) -> str | None:
    """Sonnet 5.5 refuses sampling parameters; Sonnet 5 refuses non-default values."""
    sent = [name for name in SAMPLING if name in body]
    if not sent or rules.sampling == "any":
        return None
    if rules.sampling == "refused" or any(not (n == "temperature" and body[n] == 1) for n in sent):
        return f"{sent[0]}: sampling parameters are not supported for this model; steer with output_config.effort"
    return None


def check_prefill(rules: ModelRules, body: dict[str, Any]) -> str | None:
    messages = body.get("messages") or []
    if not rules.prefill and messages and isinstance(messages[-1], dict) and messages[-1].get("role") == "assistant":
        return "messages: prefilling the assistant message is not supported for this model"
    return None


def thinking_on(rules: ModelRules, body: dict[str, Any]) -> bool:
    kind = _thinking_type(body)
    return kind in ("adaptive", "enabled") or (kind is None and rules.thinks_by_default)


def check_tool_choice(rules: ModelRules, body: dict[str, Any]) -> str | None:
    """Forced tool use returns 400 on Sonnet 5.5, and with thinking on any model."""
    forced = (body.get("tool_choice") or {}).get("type") in ("tool", "any")
    if forced and not rules.forced_tool:
        return "tool_choice: forced tool use is not supported for this model; use tool_choice auto"
    if forced and thinking_on(rules, body):
        return "Thinking may not be enabled when tool_choice forces tool use."
    return None


def check_output_config(rules: ModelRules, body: dict[str, Any]) -> str | None:
    config = body.get("output_config") or {}
    if config.get("format") and not rules.structured_outputs:
        return f"output_config.format: structured outputs are not supported on {body['model']}"
    effort = config.get("effort")
    if effort is not None and effort not in rules.efforts:
        if not rules.efforts:
            return f"output_config.effort: the effort parameter is not supported on {body['model']}"
        return f"output_config.effort: {effort!r} is not one of {list(rules.efforts)} for this model"
    return None


REQUEST_RULES: tuple[Callable[[ModelRules, dict[str, Any]], str | None], ...] = (
    check_max_tokens,
    check_thinking,
    check_sampling,
    check_prefill,
    check_tool_choice,
    check_output_config,
)


# --- thinking -------------------------------------------------------------------------------------------

# Tokens of adaptive thinking per effort (low, high) for one company. "At lower effort levels, Claude may
# skip thinking for simpler problems"; at high (the default) it almost always thinks
# (https://platform.claude.com/docs/en/build-with-claude/effort). The ranges are this fake's assumption.
_THINKING = {
    "low": (80, 600),
    "medium": (300, 1800),
    "high": (1200, 6000),
    "xhigh": (3000, 12000),
    "max": (6000, 24000),
}


def thinking_tokens(body: dict[str, Any], rules: ModelRules, key: str) -> int:
    if not thinking_on(rules, body):
        return 0
    effort = (body.get("output_config") or {}).get("effort") or "high"
    if effort == "low" and unit("skip-thinking", key) < 0.5:
        return 0
    low, high = _THINKING[effort]
    return low + int(unit("thinking", effort, key) * (high - low))


# --- the answer -----------------------------------------------------------------------------------------


def _user_text(body: dict[str, Any]) -> str:
    content = (body["messages"][-1] or {}).get("content") if body["messages"] else ""
    if isinstance(content, list):
        return "\n".join(str(b.get("text", "")) for b in content if isinstance(b, dict))
    return str(content or "")


def generate(body: dict[str, Any], rules: ModelRules, fault_kind: str | None) -> tuple[list[dict[str, Any]], str, int]:
    """(content blocks, stop_reason, output tokens). Thinking comes first and counts against
    max_tokens together with the answer: "max_tokens remains a hard limit on total output, thinking
    plus response text" (https://platform.claude.com/docs/en/models/sonnet-5/migration-guide)."""
    user = _user_text(body)
    match = _DOMAIN.search(user)
    domain = match.group(1) if match else user
    fits = expected_qualified(domain)
    verdict: dict[str, Any] = {
        "qualified": fits,
        "reason": f"{domain} {'fits' if fits else 'does not fit'} the ICP (fake).",
    }
    if fault_kind == "bad_schema":
        verdict = {"qualified": "maybe"}
    if fault_kind == "refusal":
        # https://platform.claude.com/docs/en/test-and-evaluate/strengthen-guardrails/handle-streaming-refusals
        return [], "refusal", 4
    budget = int(body["max_tokens"])
    thinking = thinking_tokens(body, rules, user)
    if fault_kind == "max_tokens":
        thinking = budget if thinking_on(rules, body) else 0
    content: list[dict[str, Any]] = []
    if thinking:  # display "omitted" (the Sonnet 5.5 default): the block comes with an empty text
        content.append({"type": "thinking", "thinking": "", "signature": "sig_" + uuid.uuid4().hex[:16]})
    forced = (body.get("tool_choice") or {}).get("type") in ("tool", "any")
    text = "Sure! This company looks like a good fit." if fault_kind == "malformed" else json.dumps(verdict)
    answer_tokens = count_tokens(rules, text) + (8 if forced else 0)
    if fault_kind == "max_tokens" and not thinking:
        answer_tokens = budget + 1
    room = budget - min(thinking, budget)
    if answer_tokens > room:
        if room > 0 and not forced:
            content.append({"type": "text", "text": text[: int(room * rules.chars_per_token)]})
        return content, "max_tokens", budget
    if forced:
        name = (body.get("tool_choice") or {}).get("name") or "tool"
        content.append({"type": "tool_use", "id": "toolu_" + uuid.uuid4().hex[:20], "name": name, "input": verdict})
        return content, "tool_use", thinking + answer_tokens
    content.append({"type": "text", "text": text})
    return content, "end_turn", thinking + answer_tokens


_TALLY_LOCK = threading.Lock()


def served(state: FakeState, usage: dict[str, int]) -> None:
    """Sums the usage of every answer in `state.options["usage"]`, so tests compare the job's usage
    with what the vendor billed."""
    with _TALLY_LOCK:
        total = state.options.setdefault("usage", {})
        for name, value in usage.items():
            total[name] = total.get(name, 0) + value


def rate_headers(state: FakeState) -> dict[str, str]:
    return {
        "anthropic-ratelimit-requests-limit": str(int(state.rate_limit) or 4000),
        "anthropic-ratelimit-requests-remaining": str(state.remaining()),
        "anthropic-ratelimit-requests-reset": "2026-11-29T00:00:00Z",
    }


def _error(status: int, kind: str, headers: dict[str, str], message: str | None = None) -> JSONResponse:
    error_type = _ERROR_TYPES.get(status, "invalid_request_error")
    text = message or {"wrong_key": "invalid x-api-key"}.get(kind, f"{error_type} (injected {kind})")
    request_id = _request_id()
    body = {"type": "error", "error": {"type": error_type, "message": text}, "request_id": request_id}
    return JSONResponse(body, status_code=status, headers={"request-id": request_id, **headers})


def _request_id() -> str:
    return "req_" + uuid.uuid4().hex[:24]


def create_app(state: FakeState) -> Any:
    cache = PromptCache(lambda: state.options.get("clock", time.monotonic)())
    tokens = anthropic_budgets(state.options)  # ITPM / OTPM (options input_tpm, output_tpm): tam_fakes.ratelimit

    def authorised(request: Request) -> bool:
        key = request.headers.get("x-api-key") or request.headers.get("authorization", "").removeprefix("Bearer ")
        return key == state.api_key

    def validate(body: Any) -> tuple[ModelRules | None, Response | None]:
        if not isinstance(body, dict):
            return None, _error(400, "", {}, "request body must be a JSON object")
        for required in ("model", "max_tokens", "messages"):
            if required not in body:
                return None, _error(400, "", {}, f"{required}: Field required")
        rules = MODELS.get(str(body["model"]))
        if rules is None:
            return None, _error(404, "", {}, f"model: {body['model']}")
        for rule in REQUEST_RULES:
            problem = rule(rules, body)
            if problem is not None:
                return None, _error(400, "", {}, problem)
        return rules, None

    async def messages(request: Request) -> Response:
        # The cache is looked up on arrival and written when the answer is ready (after the latency).
        early = read_body(await request.body())  # parsed once: ~10 KB of system prompt per request
        plan = None
        if isinstance(early, dict) and (known := MODELS.get(str(early.get("model")))) is not None:
            plan = cache.plan(early, lambda text: count_tokens(known, text), known.cache_min_tokens)
        body, fault, answer = await arrive(request, state, authorised, _error, early)
        if answer is not None:
            return answer
        if not request.headers.get("anthropic-version"):
            return _error(400, "", {}, "anthropic-version: header is required")
        rules, rejected = validate(body)
        if rejected is not None or rules is None or plan is None:
            return rejected or _error(400, "", {}, "invalid request")
        if fault is not None and fault.kind == "no_credits":
            return _error(400, "", {}, "Your credit balance is too low to access the Anthropic API.")
        content, stop, output_tokens = generate(body, rules, fault.kind if fault else None)
        read, write = cache.settle(plan)
        message: dict[str, Any] = {
            "id": "msg_" + uuid.uuid4().hex[:24],
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": content,
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {
                "input_tokens": plan.total_tokens - read - write,
                "output_tokens": output_tokens,
                "cache_creation_input_tokens": write,
                "cache_read_input_tokens": read,
            },
        }
        # Uncached input and cache writes count toward ITPM, cache reads do not; OTPM reserves
        # max_tokens and keeps what was produced (tam_fakes.ratelimit cites the rules).
        wait = charge_message(tokens, message["usage"], int(body["max_tokens"]))
        if wait is not None:
            state.throttled += 1
            limited = "This request would exceed your organization's rate limit of input or output tokens per minute"
            return _error(429, "", {"retry-after": str(max(1, round(wait + 0.5)))}, limited)
        served(state, message["usage"])
        if stop == "refusal":
            message["stop_details"] = {
                "type": "refusal",
                "category": "general_harms",
                "explanation": "This request was declined (fake refusal).",
            }
        token_headers = tokens.headers() if tokens is not None else {}
        return JSONResponse(message, headers={"request-id": _request_id(), **rate_headers(state), **token_headers})

    app = Starlette(
        routes=[Route("/v1/messages", messages, methods=["POST"]), *batch_routes(state, messages, authorised)]
    )
    return CountInFlight(app, state)
