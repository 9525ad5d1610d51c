"""What every fake vendor server shares: auth, a request log, in-flight counting, latency and faults."""

from __future__ import annotations

import asyncio
import hashlib
import json
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

FAULT_KINDS = (
    "429", "500", "502", "503", "529", "timeout", "garbage", "malformed", "bad_schema", "no_credits",
    "max_tokens", "refusal",
    "internal",  # Prospeo: 400 INTERNAL_ERROR
    "plan",  # DiscoLike: 403, the plan lacks this
    "suspended",  # Bright Data: 200 with "Account is suspended" as plain text
)  # fmt: skip
# Faults each vendor's handler renders in its own shape.
_RENDERED_BY_HANDLER = (
    "malformed",
    "bad_schema",
    "no_credits",
    "max_tokens",
    "refusal",
    "internal",
    "plan",
    "suspended",
)


@dataclass(frozen=True, slots=True)
class Fault:
    kind: str
    retry_after: float | None = None
    path: str | None = None  # only requests whose path starts with this


@dataclass(frozen=True, slots=True)
class Recorded:
    method: str
    path: str
    query: list[tuple[str, str]]
    headers: dict[str, str]
    body: Any
    at: float = field(default_factory=time.monotonic)  # when it arrived (the test process's clock)
    peer: str = ""  # the client's host:port, to tell which process asked


@dataclass
class FakeState:
    """Knobs a test turns and counters it reads. Shared between the server thread and the test."""

    api_key: str
    seed: int = 7
    latency: float = 0.0  # mean seconds, log-normal
    sigma: float = 0.5
    fault_rate: float = 0.0
    fault_kinds: tuple[str, ...] = ("429", "503", "529")
    timeout_sleep: float = 3.0
    options: dict[str, Any] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)
    in_flight: int = 0
    peak_in_flight: int = 0
    served_latencies: list[float] = field(default_factory=list)  # every injected delay, for benchmarks
    # Requests per minute admitted (0: no limit), as a token bucket holding `rate_burst` requests
    # (default: the whole minute, as Anthropic's continuously replenished limit); beyond it, 429.
    rate_limit: float = 0.0
    rate_burst: float | None = None
    throttled: int = 0  # requests answered 429 by the rate limit

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._script: deque[Fault] = deque()
        self._rng = random.Random(self.seed)
        self._tokens = self.burst
        self._stamp = time.monotonic()

    @property
    def burst(self) -> float:
        return self.rate_burst if self.rate_burst is not None else self.rate_limit

    def admit(self) -> float | None:
        """Takes one request from the rate limit: None when admitted, else seconds until it would be."""
        if self.rate_limit <= 0:
            return None
        per_second = self.rate_limit / 60
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.burst, self._tokens + (now - self._stamp) * per_second)
            self._stamp = now
            if self._tokens >= 1:
                self._tokens -= 1
                return None
            self.throttled += 1
            return (1 - self._tokens) / per_second

    def remaining(self) -> int:
        """Requests left in the rate limit right now (for the vendors' rate-limit headers)."""
        return int(self._tokens) if self.rate_limit > 0 else 3999

    def inject(self, kind: str, times: int = 1, retry_after: float | None = None, path: str | None = None) -> None:
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault {kind!r}; one of {FAULT_KINDS}")
        with self._lock:
            self._script.extend(Fault(kind, retry_after, path) for _ in range(times))

    def reset(self) -> None:
        with self._lock:
            self._script.clear()
            self.requests.clear()
            self.served_latencies.clear()
            self.throttled = 0
            self._tokens, self._stamp = self.burst, time.monotonic()
            self.in_flight = self.peak_in_flight = 0

    def calls(self, path: str) -> list[Recorded]:
        return [r for r in list(self.requests) if r.path.endswith(path)]

    def next_fault(self, path: str) -> Fault | None:
        with self._lock:
            for i, fault in enumerate(self._script):
                if fault.path is None or path.startswith(fault.path):
                    del self._script[i]
                    return fault
            if self.fault_rate and self._rng.random() < self.fault_rate:
                kind = self._rng.choice(self.fault_kinds)
                return Fault(kind, 0.05 if kind == "429" else None)
        return None

    def delay(self) -> float:
        if self.latency <= 0:
            return 0.0
        with self._lock:
            mu = math.log(self.latency) - self.sigma**2 / 2  # so the mean is `latency`
            pause = self._rng.lognormvariate(mu, self.sigma)
            self.served_latencies.append(pause)
            return pause

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1


class CountInFlight:
    """ASGI middleware: the number of requests being answered right now, and its peak."""

    def __init__(self, app: ASGIApp, state: FakeState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self.state.enter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.state.leave()


def unit(*key: object) -> float:
    """A deterministic number in [0, 1) for `key`: fakes answer the same way every run."""
    digest = hashlib.sha256(repr(key).encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


ErrorRender = Callable[[int, str, dict[str, str]], Response]


def read_body(raw: bytes) -> Any:
    """A request body as JSON, or as text when it is not JSON (None when empty)."""
    try:
        return json.loads(raw) if raw else None
    except ValueError:
        return raw.decode(errors="replace")


async def arrive(
    request: Request,
    state: FakeState,
    authorised: Callable[[Request], bool],
    error: ErrorRender,
    body: Any = None,
) -> tuple[Any, Fault | None, Response | None]:
    """Records the request, applies latency and the next fault. Returns (json body, fault that the
    handler must render itself, or a response to send as is). `body`: the handler read it already
    (`read_body`)."""
    if body is None:
        body = read_body(await request.body())
    state.requests.append(
        Recorded(
            request.method,
            request.url.path,
            list(request.query_params.multi_items()),
            dict(request.headers),
            body,
            peer=f"{request.client.host}:{request.client.port}" if request.client else "",
        )
    )
    wait = state.admit()
    if wait is not None:  # refused at once, as real APIs do, with the wait in s (and ms for Anthropic)
        headers = {"retry-after": str(math.ceil(wait)), "retry-after-ms": str(math.ceil(wait * 1000))}
        return body, None, error(429, "rate_limited", headers)
    pause = state.delay()
    if pause:
        await asyncio.sleep(pause)
    if not authorised(request):
        return body, None, error(401, "wrong_key", {})
    fault = state.next_fault(request.url.path)
    if fault is None:
        return body, None, None
    if fault.kind == "timeout":
        await asyncio.sleep(state.timeout_sleep)  # past the client's read timeout
        return body, None, None
    if fault.kind == "garbage":
        return body, None, Response('{"results": [{"person": ', media_type="application/json")
    if fault.kind in _RENDERED_BY_HANDLER:
        return body, fault, None
    headers = {"retry-after": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
    return body, None, error(int(fault.kind), fault.kind, headers)


def json_error(status: int, content: Any, headers: dict[str, str]) -> JSONResponse:
    return JSONResponse(content, status_code=status, headers=headers)


def text_error(status: int, text: str, headers: dict[str, str]) -> PlainTextResponse:
    return PlainTextResponse(text, status_code=status, headers=headers)
