"""Reading a Claude Message: the verdict by block type, the stop reason, the usage. Shared by the online
qualifier and the batch qualifier (a batch result holds the same Message)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from tam.adapters.http import excerpt
from tam.domain.model import NO_USAGE, Usage

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


class Attrs(dict[str, Any]):
    """A JSON object whose keys read as attributes too (None when missing), like the SDK's models:
    `json.loads(text, object_hook=Attrs)` reads a Message for `read_message` at a fraction of the
    CPU of building the SDK's models."""

    def __getattr__(self, key: str) -> Any:
        return self.get(key)


@dataclass(frozen=True, slots=True)
class Answer:
    """One Message read: the verdict, or `problem` saying why there is none; its stop reason; usage."""

    usage: Usage
    stop_reason: str
    qualified: bool | None = None
    reason: str = ""
    problem: str | None = None


def read_message(message: Any) -> Answer:
    """A Message (or None for a body that did not parse) as a verdict or the reason there is none."""
    if message is None:
        return Answer(NO_USAGE, "malformed", problem="malformed response body")
    usage = message_usage(message)
    stop = str(message.stop_reason or "")
    if stop == "refusal":
        details = getattr(message, "stop_details", None)
        category = getattr(details, "category", None) or "no category given"
        explanation = getattr(details, "explanation", None) or "no explanation given"
        return Answer(usage + Usage.of(claude_refusals=1), stop, problem=f"{category}: {explanation}")
    if stop == "max_tokens":
        return Answer(usage + Usage.of(claude_max_tokens_stops=1), stop, problem="cut off at max_tokens")
    try:
        qualified, reason = _verdict(message)
    except ValueError as exc:
        return Answer(usage, stop, problem=str(exc) or type(exc).__name__)
    return Answer(usage, stop, qualified, reason)


def _verdict(message: Any) -> tuple[bool, str]:
    data: Any = None
    for block in message.content:  # by type: thinking blocks may come first and are skipped
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


def message_usage(message: Any) -> Usage:
    u = getattr(message, "usage", None)
    if u is None:
        return Usage()
    return Usage.of(
        claude_input_tokens=int(getattr(u, "input_tokens", 0) or 0),
        claude_output_tokens=int(getattr(u, "output_tokens", 0) or 0),
        claude_cache_read_tokens=int(getattr(u, "cache_read_input_tokens", 0) or 0),
        claude_cache_write_tokens=int(getattr(u, "cache_creation_input_tokens", 0) or 0),
    )
