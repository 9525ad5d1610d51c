"""The jobs dashboard: one HTML page and its script and style, shipped in the package (no build step).
The page itself holds no data; it asks for the API key and calls the JSON API with it.

Every response here carries a Content-Security-Policy that allows only this origin's own script, style,
images and API (no inline code, no framing) and `X-Content-Type-Options: nosniff`."""

from __future__ import annotations

from importlib.resources import files

from starlette.datastructures import MutableHeaders
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

STATIC = ("tam.entrypoints.api", "static")
# Served without a key: nothing here is secret, and the browser cannot send a header on navigation.
OPEN_PREFIX = "/static/"

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "form-action 'none'; base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",  # frame-ancestors for browsers that predate it
    "referrer-policy": "no-referrer",
}


class SecurityHeaders:
    """Adds SECURITY_HEADERS to every response of the wrapped app."""

    def __init__(self, app: ASGIApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in SECURITY_HEADERS.items():
                    headers[name] = value
            await send(message)

        await self._app(scope, receive, send_with_headers)


async def page(request: Request) -> Response:
    html = files(STATIC[0]).joinpath(STATIC[1], "index.html").read_text(encoding="utf-8")
    return HTMLResponse(html, headers={"cache-control": "no-cache", **SECURITY_HEADERS})


routes = [
    Route("/", page, methods=["GET"]),
    Mount("/static", SecurityHeaders(StaticFiles(packages=[STATIC])), name="static"),
]
