"""Small request/response helpers the route modules share."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

from pydantic import BaseModel, TypeAdapter
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from tam.containers import Services
from tam.entrypoints.api.errors import BadRequest

MAX_BODY = 1024 * 1024

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


def services(request: Request) -> Services:
    """What the app opened at startup (`create_app`'s lifespan), shared by every request."""
    return request.app.state.services  # type: ignore[no-any-return]


async def read_body(request: Request) -> bytes:
    """The body, refusing more than MAX_BODY bytes before reading them when the length is declared."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY:
        raise BadRequest("request body larger than 1 MiB", status=413)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY:
            raise BadRequest("request body larger than 1 MiB", status=413)
        chunks.append(chunk)
    return b"".join(chunks)


async def parse_body(request: Request, model: type[M]) -> M:
    body = await read_body(request)
    if not body.strip():
        raise BadRequest("missing JSON body")
    return model.model_validate_json(body)  # ValidationError -> 400, mapped in errors.py


async def parse_body_as(request: Request, adapter: TypeAdapter[T]) -> T:
    body = await read_body(request)
    if not body.strip():
        raise BadRequest("missing JSON body")
    return adapter.validate_json(body)


def parse_query(request: Request, model: type[M]) -> M:
    return model.model_validate(dict(request.query_params))


def by_method(**handlers: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
    """One endpoint for several methods of a path, so a 405 lists all of them in `Allow`."""

    async def endpoint(request: Request) -> Response:
        return await handlers[request.method.lower()](request)

    return endpoint


def reply(model: BaseModel, status: int = 200) -> JSONResponse:
    return JSONResponse(model.model_dump(mode="json", by_alias=True), status_code=status)
