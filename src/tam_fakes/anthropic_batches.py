"""Fake Message Batches API, mounted into the fake Anthropic app. Each request of a batch is answered
by the fake's own Messages handler, so a batched answer is the online answer.

Documented rules it follows (https://platform.claude.com/docs/en/build-with-claude/batch-processing and
the API reference pages create / retrieve / results / cancel under platform.claude.com/docs/en/api/
messages/batches):
- `POST /v1/messages/batches` `{"requests": [{"custom_id", "params"}]}`: 1 to 100,000 requests, at most
  256 MB; custom_id unique within the batch, 1-64 characters of [a-zA-Z0-9_-]; answers the batch
  object at once, `processing_status: in_progress`.
- `GET /v1/messages/batches/{id}`: the batch object with `request_counts` (processing, succeeded,
  errored, canceled, expired); "Requests start as processing and move to one of the other statuses
  only once processing of the entire batch ends"; `results_url` is set once it has ended.
- `GET .../{id}/results`: JSONL, one `{"custom_id", "result": {"type": "succeeded", "message"} |
  {"type": "errored", "error"} | {"type": "canceled"} | {"type": "expired"}}` per request, "not
  guaranteed to be in the same order as requests".
- `POST .../{id}/cancel`: `processing_status: canceling`, then `ended`; requests not processed yet end
  `canceled`.
- A batch expires 24 hours after creation (`expires_at`); requests unfinished by then end `expired`.

Knobs (FakeState.options): `batch_seconds` (how long a batch takes, default 2), `batch_expire_rate`
(fraction of requests that expire), `batch_error_rate` (fraction answered `errored`, an
`overloaded_error`). `batches(state).creates` counts created batches.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tam_fakes.base import FakeState, unit

MAX_REQUESTS = 100_000
MAX_BYTES = 256 * 1024 * 1024
EXPIRES_AFTER = timedelta(hours=24)
_CUSTOM_ID = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
INTERNAL_PATH = "/v1/messages/batch-request"  # where batched requests are answered (faults can target it)

Handler = Callable[[Request], Awaitable[Response]]


@dataclass
class FakeBatch:
    id: str
    requests: list[dict[str, Any]]
    created: float  # monotonic
    created_at: datetime
    cancel_initiated_at: datetime | None = None
    ended_at: datetime | None = None
    results: list[dict[str, Any]] | None = None
    settling: bool = False  # its results are being worked out (one retrieve at a time does it)


@dataclass
class Batches:
    creates: int = 0
    store: dict[str, FakeBatch] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


def batches(state: FakeState) -> Batches:
    found = state.options.get("_batches")
    if not isinstance(found, Batches):
        found = state.options["_batches"] = Batches()
    return found


def _iso(at: datetime | None) -> str | None:
    return at.isoformat().replace("+00:00", "Z") if at else None


def _error(status: int, kind: str, message: str) -> JSONResponse:
    body = {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_" + uuid.uuid4().hex[:24]}
    return JSONResponse(body, status_code=status)


def routes(state: FakeState, messages: Handler, authorised: Callable[[Request], bool]) -> list[Route]:
    registry = batches(state)

    def seconds() -> float:
        return float(state.options.get("batch_seconds", 2.0))

    def ended(batch: FakeBatch) -> bool:
        return batch.results is not None

    def counts(batch: FakeBatch) -> dict[str, int]:
        tally = {"processing": 0, "succeeded": 0, "errored": 0, "canceled": 0, "expired": 0}
        if batch.results is None:
            tally["processing"] = len(batch.requests)
        else:
            for line in batch.results:
                tally[line["result"]["type"]] += 1
        return tally

    def view(request: Request, batch: FakeBatch) -> dict[str, Any]:
        status = "ended" if ended(batch) else ("canceling" if batch.cancel_initiated_at else "in_progress")
        base = str(request.base_url).rstrip("/")
        return {
            "id": batch.id,
            "type": "message_batch",
            "processing_status": status,
            "request_counts": counts(batch),
            "created_at": _iso(batch.created_at),
            "expires_at": _iso(batch.created_at + EXPIRES_AFTER),
            "ended_at": _iso(batch.ended_at),
            "cancel_initiated_at": _iso(batch.cancel_initiated_at),
            "archived_at": None,
            "results_url": f"{base}/v1/messages/batches/{batch.id}/results" if ended(batch) else None,
        }

    async def answer(request: Request, custom_id: str, params: dict[str, Any]) -> dict[str, Any]:
        if unit("batch-expire", custom_id) < float(state.options.get("batch_expire_rate", 0.0)):
            return {"type": "expired"}
        if unit("batch-error", custom_id) < float(state.options.get("batch_error_rate", 0.0)):
            return {
                "type": "errored",
                "error": {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
            }
        body = json.dumps(params).encode()
        headers = [
            (k.encode(), v.encode())
            for k, v in request.headers.items()
            if k in ("x-api-key", "authorization", "anthropic-version")
        ]
        scope = {
            "type": "http",
            "method": "POST",
            "path": INTERNAL_PATH,
            "raw_path": INTERNAL_PATH.encode(),
            "query_string": b"",
            "headers": [*headers, (b"content-type", b"application/json")],
            "server": request.scope.get("server"),
            "scheme": "http",
        }
        sent = False

        async def receive() -> dict[str, Any]:
            nonlocal sent
            if sent:
                return {"type": "http.disconnect"}
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}

        response = await messages(Request(scope, receive))
        payload = json.loads(bytes(response.body))
        if response.status_code == 200:
            return {"type": "succeeded", "message": payload}
        return {"type": "errored", "error": payload}

    async def settle(request: Request, batch: FakeBatch) -> None:
        """Once its time is up (or it is cancelled), every request gets its result at once."""
        if ended(batch) or batch.settling:
            return
        due = time.monotonic() - batch.created >= seconds()
        if not due and batch.cancel_initiated_at is None:
            return
        batch.settling = True
        results = []
        for item in batch.requests:
            if batch.cancel_initiated_at is not None and not due:
                result: dict[str, Any] = {"type": "canceled"}
            else:
                result = await answer(request, item["custom_id"], item["params"])
            results.append({"custom_id": item["custom_id"], "result": result})
        results.reverse()  # not in request order, as documented
        batch.results = results
        batch.ended_at = datetime.now(UTC)

    async def create(request: Request) -> Response:
        if not authorised(request):
            return _error(401, "authentication_error", "invalid x-api-key")
        raw = await request.body()
        if len(raw) > MAX_BYTES:
            return _error(413, "request_too_large", "Request exceeds the maximum allowed number of bytes.")
        try:
            body = json.loads(raw)
        except ValueError:
            return _error(400, "invalid_request_error", "request body is not JSON")
        requests = body.get("requests") if isinstance(body, dict) else None
        if not isinstance(requests, list) or not 1 <= len(requests) <= MAX_REQUESTS:
            return _error(400, "invalid_request_error", f"requests: between 1 and {MAX_REQUESTS} requests are required")
        seen: set[str] = set()
        for i, item in enumerate(requests):
            custom_id = item.get("custom_id") if isinstance(item, dict) else None
            if not isinstance(custom_id, str) or not _CUSTOM_ID.match(custom_id):
                return _error(
                    400, "invalid_request_error", f"requests.{i}.custom_id: must match ^[a-zA-Z0-9_-]{{1,64}}$"
                )
            if custom_id in seen:
                return _error(400, "invalid_request_error", f"requests.{i}.custom_id: duplicate {custom_id!r}")
            if not isinstance(item.get("params"), dict):
                return _error(400, "invalid_request_error", f"requests.{i}.params: Field required")
            seen.add(custom_id)
        batch = FakeBatch("msgbatch_" + uuid.uuid4().hex[:24], requests, time.monotonic(), datetime.now(UTC))
        with registry.lock:
            registry.creates += 1
            registry.store[batch.id] = batch
        return JSONResponse(view(request, batch))

    def find(request: Request) -> FakeBatch | Response:
        """The batch the path names, or the vendor's 401 / 404 answer."""
        if not authorised(request):
            return _error(401, "authentication_error", "invalid x-api-key")
        batch = registry.store.get(request.path_params["batch_id"])
        return batch if batch is not None else _error(404, "not_found_error", "message batch not found")

    async def retrieve(request: Request) -> Response:
        batch = find(request)
        if not isinstance(batch, FakeBatch):
            return batch
        await settle(request, batch)
        return JSONResponse(view(request, batch))

    async def cancel(request: Request) -> Response:
        batch = find(request)
        if not isinstance(batch, FakeBatch):
            return batch
        if not ended(batch) and batch.cancel_initiated_at is None:
            batch.cancel_initiated_at = datetime.now(UTC)
        return JSONResponse(view(request, batch))

    async def results(request: Request) -> Response:
        batch = find(request)
        if not isinstance(batch, FakeBatch):
            return batch
        await settle(request, batch)
        if batch.results is None:
            return _error(400, "invalid_request_error", "results are available once the batch has ended")
        lines = batch.results

        async def stream() -> Any:
            for start in range(0, len(lines), 500):
                yield "".join(json.dumps(line) + "\n" for line in lines[start : start + 500]).encode()

        return StreamingResponse(stream(), media_type="application/binary")

    return [
        Route("/v1/messages/batches", create, methods=["POST"]),
        Route("/v1/messages/batches/{batch_id}", retrieve, methods=["GET"]),
        Route("/v1/messages/batches/{batch_id}/cancel", cancel, methods=["POST"]),
        Route("/v1/messages/batches/{batch_id}/results", results, methods=["GET"]),
    ]
