"""The jobs dashboard: one HTML page and its script and style, shipped in the package (no build step).
The page itself holds no data; it asks for the API key and calls the JSON API with it."""

from __future__ import annotations

from importlib.resources import files

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

STATIC = ("tam.entrypoints.api", "static")
# Served without a key: nothing here is secret, and the browser cannot send a header on navigation.
OPEN_PREFIX = "/static/"


async def page(request: Request) -> Response:
    html = files(STATIC[0]).joinpath(STATIC[1], "index.html").read_text(encoding="utf-8")
    return HTMLResponse(html, headers={"cache-control": "no-cache", "x-content-type-options": "nosniff"})


routes = [
    Route("/", page, methods=["GET"]),
    Mount("/static", StaticFiles(packages=[STATIC]), name="static"),
]
