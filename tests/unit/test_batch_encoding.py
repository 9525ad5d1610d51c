"""The batch create body, encoded with the shared prompt once per run: the same JSON as encoding
every request whole."""

from __future__ import annotations

import json
from typing import Any

from tam.adapters.claude_batches import encode_requests


def test_encoding_equals_the_plain_encoding_of_every_request() -> None:
    system = [{"type": "text", "text": 'Rules \u00e9\u6771 "quoted"\n' * 50, "cache_control": {"type": "ephemeral"}}]
    requests: list[tuple[str, dict[str, Any]]] = [
        (f"id{i}", {"model": "m", "max_tokens": 2048, "system": system if i < 3 else [], "messages": [
            {"role": "user", "content": f"Company: C{i}\nDomain: c{i}.example"}]})
        for i in range(5)
    ]  # fmt: skip
    requests.append(("bare", {"messages": [{"role": "user", "content": "x"}]}))
    decoded = json.loads(encode_requests(requests))
    assert decoded == {"requests": [{"custom_id": cid, "params": params} for cid, params in requests]}
