"""`tam serve`: the HTTP API on uvicorn. Without REDIS_URL it also runs the jobs it dispatches."""

from __future__ import annotations

import logging
import secrets
from typing import Any

import typer

from tam.entrypoints.cli.session import load_settings
from tam.logs import level_from_env, say

LOCAL = "127.0.0.1"


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        host: str = typer.Option(LOCAL, help="Interface to bind (only 127.0.0.1 without SERVICE_API_KEY)."),
        port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
    ) -> None:
        """Serve the HTTP API, the dashboard (/) and /metrics.

        /healthz answers once the port is bound; /readyz answers 503 naming what is down (database, Redis)."""
        import uvicorn

        from tam.entrypoints.api import create_app

        settings = load_settings()  # a bad variable: one line and exit 2, before anything is served
        api_key: str | None = None
        if settings.service_api_key is None or not settings.service_api_key.get_secret_value():
            api_key = secrets.token_urlsafe(24)
            if host != LOCAL:
                say(f"SERVICE_API_KEY is not set, so binding {LOCAL} instead of {host}", warning=True)
                host = LOCAL
            # Printed once on the terminal that started the server; never logged.
            say(f"SERVICE_API_KEY is not set; this run's key is {api_key}", warning=True)
        mode = "jobs go to Redis workers" if settings.redis_url else "jobs run in this process"
        # log_config=None: uvicorn keeps to the JSON logging the CLI set up. One line per request (its
        # access log, about 0.08 ms of CPU each: as much as all the rest of /healthz) only at
        # TAM_LOG_LEVEL=debug; errors are logged at every level.
        config = uvicorn.Config(
            create_app(settings, api_key),
            host=host,
            port=port,
            log_config=None,
            access_log=level_from_env() <= logging.DEBUG,
        )
        server = uvicorn.Server(config)
        startup = server.startup

        async def announced_startup(sockets: Any = None) -> None:
            await startup(sockets)
            if server.started:  # said once the port is bound, never before
                say(f"serving on http://{host}:{port} ({settings.tam_store} store, {mode})")

        server.startup = announced_startup  # type: ignore[method-assign]
        server.run()
        if not server.started:
            raise typer.Exit(1)
