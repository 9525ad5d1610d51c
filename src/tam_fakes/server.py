"""Runs a fake vendor app on 127.0.0.1 on a free port, in a background thread, with uvicorn."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

import uvicorn

from tam_fakes import anthropic, brightdata, discolike, prospeo
from tam_fakes.base import FakeState

APPS: dict[str, Callable[[FakeState], Any]] = {
    "anthropic": anthropic.create_app,
    "prospeo": prospeo.create_app,
    "brightdata": brightdata.create_app,
    "discolike": discolike.create_app,
}


class FakeServer:
    """`with FakeServer("prospeo", api_key="k") as fake: fake.url, fake.state.inject("429")`."""

    def __init__(self, vendor: str, *, api_key: str = "test-key", **knobs: Any) -> None:
        self.vendor = vendor
        self.state = FakeState(api_key=api_key, **knobs)
        self._app = APPS[vendor](self.state)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FakeServer:
        # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say they are TCP; without it
        # Nagle holds each small response body until the client's delayed ACK (~40 ms per request).
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._app,
            log_level="warning",
            access_log=False,
            lifespan="off",
            ws="none",
            http="httptools",
            loop="uvloop",
            timeout_graceful_shutdown=1,
            backlog=2048,
            limit_concurrency=None,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, name=f"fake-{self.vendor}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError(f"fake {self.vendor} server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
            self._server.force_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
