"""The Starlette application: `create_app(settings)` wires routes, auth and error mapping; its lifespan
opens the services once (`open_services`) and every request uses them."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator
from uuid import uuid4

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from tam.containers import Services, open_services
from tam.domain.model import TamError
from tam.entrypoints.api import dashboard, jobs, projects
from tam.entrypoints.api.errors import (
    BadRequest,
    error,
    on_bad_request,
    on_http_error,
    on_tam_error,
    on_unexpected,
    on_validation_error,
)
from tam.entrypoints.api.http import reply, services
from tam.entrypoints.api.openapi import build_openapi
from tam.entrypoints.api.schemas import Health, Readiness
from tam.ports.runtime import JobDispatcher
from tam.settings import Settings

log = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/healthz", "/"})


def is_open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(dashboard.OPEN_PREFIX)


class ApiKeyAuth:
    """Every route but /healthz and the dashboard's page and files needs `x-api-key: SERVICE_API_KEY`,
    compared in constant time. /metrics too: a Prometheus scrape sends it with `http_headers`."""

    def __init__(self, app: ASGIApp, api_key: str) -> None:
        self._app = app
        self._key = api_key.encode()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and not is_open(scope["path"]):
            given = dict(scope["headers"]).get(b"x-api-key", b"")
            if not hmac.compare_digest(given, self._key):
                message = "wrong x-api-key" if given else "missing x-api-key header"
                await error(401, message)(scope, receive, send)
                return
        await self._app(scope, receive, send)


async def healthz(request: Request) -> JSONResponse:
    return reply(Health(status="ok"))


READY_CHECK_TIMEOUT_S = 5.0


async def readyz(request: Request) -> JSONResponse:
    """200 when the store and the broker (with REDIS_URL) both answer; else 503 naming each one
    down. Both are asked again on every call, so readiness comes back with them."""
    s = services(request)
    down: list[str] = []
    try:
        async with asyncio.timeout(READY_CHECK_TIMEOUT_S):
            await s.jobs.list(uuid4())
    except Exception as exc:
        down.append(f"database unreachable ({_reason(exc)})")
    broker = "embedded"
    if s.settings.redis_url is not None:
        broker = "ok"
        try:
            async with asyncio.timeout(READY_CHECK_TIMEOUT_S):
                await s.dispatcher.ping()
        except Exception as exc:
            down.append(f"broker (Redis) unreachable ({_reason(exc)})")
    if down:
        return error(503, "not ready: " + "; ".join(down))
    return reply(Readiness(status="ready", database="ok", broker=broker))


def _reason(exc: BaseException) -> str:
    """Our own errors' text names no secret; anything else is told by its type only."""
    if isinstance(exc, TimeoutError):
        return f"no answer within {READY_CHECK_TIMEOUT_S:g} s"
    return str(exc) if isinstance(exc, TamError) else type(exc).__name__


async def metrics(request: Request) -> Response:
    exposition = services(request).metrics
    return Response(await exposition.render(), media_type=exposition.content_type)


async def _sweep_forever(s: Services) -> None:
    """Embedded mode has no worker to sweep: jobs whose attempt vanished (an outage outlasted the
    tolerance, a previous process died) are resumed from here."""
    interval = s.settings.tam_worker_heartbeat_timeout / 3
    while True:
        try:
            await s.stale_job_sweep()
        except Exception as exc:  # the API still serves; the jobs stay `running` for the next sweep
            log.warning("could not resume the jobs left running: %s: %s", type(exc).__name__, exc)
        await asyncio.sleep(interval)


def create_app(settings: Settings, api_key: str | None = None, dispatcher: JobDispatcher | None = None) -> Starlette:
    """`api_key` defaults to SERVICE_API_KEY; `tam serve` passes a generated one when that is unset.
    `dispatcher` replaces the one the settings choose (tests)."""
    if api_key is None:
        secret = settings.service_api_key
        if secret is None or not secret.get_secret_value():
            raise TamError("SERVICE_API_KEY is not set")
        api_key = secret.get_secret_value()
    document = build_openapi()

    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(document)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        # Embedded jobs run in this loop; they stop with it (and stay `running`) when the services close.
        async with open_services(settings, dispatcher=dispatcher) as s:
            app.state.services = s
            sweeper = None
            if settings.redis_url is None:  # embedded: no worker resumes a dead attempt's jobs
                sweeper = asyncio.create_task(_sweep_forever(s))
            try:
                yield
            finally:
                if sweeper is not None:
                    sweeper.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await sweeper

    app = Starlette(
        routes=[
            Route("/healthz", healthz, methods=["GET"]),
            Route("/readyz", readyz, methods=["GET"]),
            Route("/openapi.json", openapi, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            *jobs.routes,
            *projects.routes,
            *dashboard.routes,
        ],
        exception_handlers={
            TamError: on_tam_error,
            BadRequest: on_bad_request,
            ValidationError: on_validation_error,
            HTTPException: on_http_error,
            Exception: on_unexpected,
        },
        lifespan=lifespan,
    )
    app.add_middleware(ApiKeyAuth, api_key=api_key)
    return app
