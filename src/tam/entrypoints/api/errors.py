"""The one error shape of the API, `{"error": "one line"}`, and the one place that maps errors to
statuses. Nothing here ever puts a traceback or a setting's value into a response or a log line."""

from __future__ import annotations

import logging

from pydantic import ValidationError
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse

from tam.domain.model import ActiveJobExists, Conflict, InvalidInput, NotFound, RejectedValue, TamError

log = logging.getLogger(__name__)


class BadRequest(Exception):
    """The request itself is unusable: malformed JSON, a missing or mistyped field (400)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": " ".join(message.split())[:500]}, status_code=status)


def describe_validation(exc: ValidationError) -> str:
    errors = exc.errors(include_input=False, include_url=False)
    if any(e["type"] == "json_invalid" for e in errors):
        return "malformed JSON body"
    missing = [_where(e["loc"]) for e in errors if e["type"] == "missing"]
    if missing:
        return "missing field" + ("s " if len(missing) > 1 else " ") + ", ".join(missing)
    first = errors[0]
    where = _where(first["loc"])
    if first["type"] == "extra_forbidden":
        return f"unknown field {where}"
    if not where:
        return f"invalid body: {first['msg']}"
    return f"invalid field {where}: {first['msg']}"


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


STATUS_OF: tuple[tuple[type[TamError], int], ...] = (
    (NotFound, 404),
    (Conflict, 409),
    (RejectedValue, 400),
    (InvalidInput, 422),
)


async def on_tam_error(request: Request, exc: Exception) -> JSONResponse:
    if isinstance(exc, ActiveJobExists):  # the caller can follow the job that is already active
        return JSONResponse({"error": " ".join(str(exc).split())[:500], "jobId": str(exc.job_id)}, status_code=409)
    for kind, status in STATUS_OF:
        if isinstance(exc, kind):
            return error(status, str(exc))
    # Any other deliberate error here is a dependency we could not reach (the broker, say).
    log.warning("%s %s: %s", request.method, request.url.path, exc)
    return error(503, str(exc))


async def on_bad_request(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BadRequest)
    return error(exc.status, str(exc))


async def on_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ValidationError)
    return error(400, describe_validation(exc))


async def on_http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    response = error(exc.status_code, exc.detail)
    if exc.headers:
        response.headers.update(exc.headers)
    return response


async def on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    log.error("%s %s failed: %s", request.method, request.url.path, type(exc).__name__)
    return error(500, "internal error")
