"""`tam serve`: the HTTP API on uvicorn. Without REDIS_URL it also runs the jobs it dispatches."""

from __future__ import annotations

import secrets
import sys

import typer

from tam.containers import build_container
from tam.settings import Settings

LOCAL = "127.0.0.1"


def register(app: typer.Typer) -> None:
    @app.command()
    def serve(
        host: str = typer.Option(LOCAL, help="Interface to bind (only 127.0.0.1 without SERVICE_API_KEY)."),
        port: int = typer.Option(8000, min=1, max=65535, help="TCP port."),
    ) -> None:
        """Serve the HTTP API (design section 5)."""
        import uvicorn

        from tam.entrypoints.api import create_app

        settings = Settings()
        api_key: str | None = None
        if settings.service_api_key is None or not settings.service_api_key.get_secret_value():
            api_key = secrets.token_urlsafe(24)
            if host != LOCAL:
                print(f"tam: SERVICE_API_KEY is not set, so binding {LOCAL} instead of {host}", file=sys.stderr)
                host = LOCAL
            # Printed once on the terminal that started the server; never logged.
            print(f"tam: SERVICE_API_KEY is not set; this run's key is {api_key}", file=sys.stderr)
        mode = "jobs go to Redis workers" if settings.redis_url else "jobs run in this process"
        print(f"tam: serving on http://{host}:{port} ({settings.tam_store} store, {mode})", file=sys.stderr)
        # log_config=None: uvicorn keeps to the JSON logging the CLI set up
        uvicorn.run(create_app(build_container(settings), api_key), host=host, port=port, log_config=None)
