"""Logging for every runtime: structlog renders both structlog and stdlib records (the domain, Dramatiq
and uvicorn log through stdlib `logging`), binds `job_id`, `project_id`, `job_type` and `attempt` from
context variables, keeps errors on one line and masks secrets."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import re
import sys
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Generic, TextIO, TypeVar
from urllib.parse import urlsplit
from uuid import UUID

import structlog
from structlog.tracebacks import ExceptionDictTransformer
from structlog.typing import EventDict, Processor

from tam.domain.model import Job, JobStatus, TamError, TimeLimitExceeded
from tam.ports.runtime import CallObserver, CallOutcome
from tam.ports.storage import JobRepo

T = TypeVar("T")

MASK = "[redacted]"
MIN_SECRET_LENGTH = 6  # shorter "secrets" would mask ordinary words

# Shapes of credentials worth masking even when they are not ours: bearer tokens, api-key headers,
# passwords in connection strings and Anthropic-style keys.
_PATTERNS = (
    re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]{8,}"),
    re.compile(r"(?i)((?:x-api-key|apikey|api_key|authorization)[\"']?\s*[:=]\s*[\"']?)[^\s\"',;]{6,}"),
    re.compile(r"(://[^:/@\s]+:)[^@/\s]+(@)"),
    re.compile(r"()sk-ant-[A-Za-z0-9_-]{8,}"),
)


def secrets_of(settings: Any) -> list[str]:
    """Every configured secret: the API keys and the passwords inside DATABASE_URL and REDIS_URL."""
    found: list[str] = []
    for name in (
        "service_api_key",
        "anthropic_api_key",
        "prospeo_api_key",
        "bright_data_api_key",
        "discolike_api_key",
        "supabase_service_role_key",
        "database_url",
        "redis_url",
    ):
        value = getattr(settings, name, None)
        text = value.get_secret_value() if value is not None and hasattr(value, "get_secret_value") else value
        if not text:
            continue
        if name.endswith("_url"):
            with contextlib.suppress(ValueError):
                password = urlsplit(text).password
                if password:
                    found.append(password)
            continue
        found.append(text)
    return found


class Redactor:
    """A structlog processor masking the configured secrets and credential-shaped text in every field."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self.secrets = sorted({s for s in secrets if len(s) >= MIN_SECRET_LENGTH}, key=len, reverse=True)

    def redact(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        for pattern in _PATTERNS:
            text = pattern.sub(lambda m: m.group(1) + MASK + (m.group(2) if m.re.groups >= 2 else ""), text)
        return text

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.redact(value)
        if isinstance(value, dict):
            return {k: self._value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._value(v) for v in value)
        if isinstance(value, int | float | bool) or value is None:
            return value
        return self.redact(str(value))

    def __call__(self, logger: Any, method: str, event: EventDict) -> EventDict:
        return {k: self._value(v) for k, v in event.items()}


_redactor = Redactor()
_json_lines = False


def say(message: str, *, warning: bool = False) -> None:
    """A message for whoever started the command, on stderr: `tam: message` on a terminal, or a log
    line when logs are JSON (servers), so that every line of the stream stays JSON."""
    if _json_lines:
        logger = structlog.get_logger("tam")
        (logger.warning if warning else logger.info)(message)
    else:
        print(f"tam: {message}", file=sys.stderr)  # noqa: T201


# Loggers that write one line per HTTP request (with URLs and headers), not events of ours: the
# Anthropic SDK's client (`httpx2`) wrote one INFO line per Claude call.
QUIET_LOGGERS = ("httpx", "httpx2", "httpcore", "hpack", "anthropic", "urllib3")


def _errors_on_one_line(with_traceback: bool) -> Processor:
    """An exception becomes two fields of its line, `error_type` and `error`. The traceback (frames
    only, never their local variables, which can hold keys and rows) is kept only at debug level."""

    def process(logger: Any, method: str, event: EventDict) -> EventDict:
        exc_info = event.pop("exc_info", None)
        if not exc_info:
            return event
        if isinstance(exc_info, BaseException):
            exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
        elif not isinstance(exc_info, tuple):
            exc_info = sys.exc_info()
        if exc_info[0] is None:
            return event
        event.setdefault("error_type", exc_info[0].__name__)
        event.setdefault("error", " ".join(str(exc_info[1]).split())[:500])
        if with_traceback:
            event["exc_info"] = exc_info
        return event

    return process


def configure_logging(
    *, json: bool, secrets: Iterable[str] = (), level: int = logging.INFO, stream: TextIO | None = None
) -> None:
    """Route structlog and stdlib logging (Dramatiq's and uvicorn's included) to one handler on
    `stream` (stderr): JSON lines for servers and workers, plain text for a terminal. Safe to call
    again (tests, re-configuration)."""
    global _json_lines
    _json_lines = json
    _redactor.secrets = Redactor(secrets).secrets
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    final: list[Processor] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        _errors_on_one_line(with_traceback=level <= logging.DEBUG),
    ]
    if json:
        final += [structlog.processors.ExceptionRenderer(ExceptionDictTransformer(show_locals=False))]
    else:
        final += [structlog.processors.format_exc_info]
    final += [_redactor, renderer]
    formatter = structlog.stdlib.ProcessorFormatter(foreign_pre_chain=shared, processors=final)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(formatter)
    handler.set_name("tam")
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for noisy in QUIET_LOGGERS:
        logging.getLogger(noisy).setLevel(max(level, logging.WARNING))
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


def level_from_env(default: int = logging.INFO) -> int:
    """TAM_LOG_LEVEL (debug, info, warning, error), read by every entrypoint that sets up logging."""
    name = os.environ.get("TAM_LOG_LEVEL", "").strip().upper()
    value = logging.getLevelName(name) if name else default
    return value if isinstance(value, int) else default


@contextlib.contextmanager
def job_context(job_id: UUID, project_id: UUID, **fields: Any) -> Iterator[None]:
    """Every log line in this block (and in tasks it starts) carries the job and project ids."""
    with structlog.contextvars.bound_contextvars(job_id=str(job_id), project_id=str(project_id), **fields):
        yield


@contextlib.contextmanager
def _job_ids(job_id: UUID, job: Job | None) -> Iterator[None]:
    if job is None:
        with structlog.contextvars.bound_contextvars(job_id=str(job_id)):
            yield
    else:
        with job_context(job_id, job.project_id, job_type=job.job_type.value):
            yield


# --- per-job call summary -------------------------------------------------------------------------


@dataclass
class ProviderTally:
    calls: int = 0
    retries: int = 0
    throttled: int = 0
    errors: int = 0
    seconds: float = 0.0


class CallTally:
    """What one attempt's provider calls came to, by provider: logged once when the attempt ends,
    instead of a line per retry or per 429."""

    def __init__(self) -> None:
        self.providers: dict[str, ProviderTally] = {}

    def of(self, provider: str) -> ProviderTally:
        tally = self.providers.get(provider)
        if tally is None:
            tally = self.providers[provider] = ProviderTally()
        return tally

    def summary(self) -> dict[str, dict[str, float | int]]:
        return {
            name: {
                "calls": t.calls,
                "retries": t.retries,
                "throttled": t.throttled,
                "errors": t.errors,
                "seconds": round(t.seconds, 3),
            }
            for name, t in sorted(self.providers.items())
        }


# Set for the length of one attempt; tasks the attempt starts copy the context, so they share it.
_current_tally: ContextVar[CallTally | None] = ContextVar("tam_call_tally", default=None)


class JobCallTally:
    """A CallObserver that adds every call to the running attempt's CallTally, then hands it on."""

    def __init__(self, inner: CallObserver | None = None) -> None:
        self._inner = inner

    def call_started(self, provider: str) -> None:
        tally = _current_tally.get()
        if tally is not None:
            tally.of(provider).calls += 1
        if self._inner is not None:
            self._inner.call_started(provider)

    def call_finished(self, provider: str, seconds: float, outcome: CallOutcome) -> None:
        tally = _current_tally.get()
        if tally is not None:
            entry = tally.of(provider)
            entry.seconds += max(seconds, 0.0)
            if outcome == "throttled":
                entry.throttled += 1
            elif outcome in ("transient", "failed"):
                entry.errors += 1
        if self._inner is not None:
            self._inner.call_finished(provider, seconds, outcome)

    def call_retried(self, provider: str) -> None:
        tally = _current_tally.get()
        if tally is not None:
            tally.of(provider).retries += 1
        if self._inner is not None:
            self._inner.call_retried(provider)


# --- one delivery of a job ------------------------------------------------------------------------

Execute = Callable[[UUID, float | None, str | None], Awaitable[T]]
job_log = structlog.get_logger("tam.jobs")


class JobLogContext(Generic[T]):
    """Wraps one delivery of a job (JobAttempt). Its log lines, the runner's and the worker's carry
    `job_id`, `project_id`, `job_type` and `attempt` as fields (context variables are per task, so
    concurrent jobs on one event loop keep their own), and the attempt writes one line when it
    starts or resumes (saying why) and one when it ends (status, counts, duration, usage, and its
    provider calls summed: calls, retries, 429s). Without the database (an outage) it binds the job
    id alone and lets the attempt wait it out."""

    def __init__(self, execute: Execute[T], jobs: JobRepo, stale_after: float = 15.0) -> None:
        self._execute = execute
        self._jobs = jobs
        self._stale_after = stale_after

    async def __call__(self, job_id: UUID, time_limit: float | None, task_id: str | None = None) -> T:
        try:
            job: Job | None = await self._jobs.get(job_id)
        except TamError:  # NotFound or an outage: the attempt itself decides what that means
            job = None
        if job is None or job.status.finished:
            with _job_ids(job_id, job):
                return await self._execute(job_id, time_limit, task_id)
        tally = CallTally()
        token = _current_tally.set(tally)
        try:
            with job_context(job_id, job.project_id, job_type=job.job_type.value, attempt=job.attempts + 1):
                self._log_begin(job, time_limit)
                began = time.monotonic()
                try:
                    result = await self._execute(job_id, time_limit, task_id)
                except BaseException as exc:
                    self._log_interrupted(exc, time.monotonic() - began, tally)
                    raise
                ended = result if isinstance(result, Job) else getattr(result, "job", None)
                end = getattr(result, "end", None)
                if not isinstance(ended, Job):
                    job_log.info("attempt ended", end=str(end), duration_s=round(time.monotonic() - began, 3))
                    return result
                job_log.info(
                    "attempt ended",
                    status=ended.status.value,
                    items_total=ended.items_total,
                    items_done=ended.items_done,
                    items_failed=ended.items_failed,
                    duration_s=round(time.monotonic() - began, 3),
                    usage=dict(ended.usage.counts),
                    calls=tally.summary(),
                    **({"end": str(end)} if end is not None else {}),
                    **({"error": ended.error} if ended.error else {}),
                )
                return result
        finally:
            _current_tally.reset(token)

    def _log_begin(self, job: Job, time_limit: float | None) -> None:
        if job.status is not JobStatus.RUNNING or job.attempts == 0:
            job_log.info("attempt started", time_limit_s=time_limit)
            return
        beat = job.heartbeat_at or job.updated_at or job.started_at
        quiet = (datetime.now(UTC) - beat).total_seconds() if beat is not None else None
        if quiet is not None and quiet >= self._stale_after:
            reason = f"worker lost: no heartbeat for {quiet:.0f} s"
        else:
            reason = "the previous attempt stopped before the end (time limit, error or shutdown)"
        job_log.info(
            "attempt resumed",
            reason=reason,
            items_total=job.items_total,
            items_done=job.items_done,
            items_failed=job.items_failed,
            time_limit_s=time_limit,
        )

    def _log_interrupted(self, exc: BaseException, seconds: float, tally: CallTally) -> None:
        fields = {"duration_s": round(seconds, 3), "calls": tally.summary()}
        if isinstance(exc, asyncio.CancelledError):
            job_log.info("attempt interrupted", reason="cancelled (worker shutting down or time limit)", **fields)
        elif isinstance(exc, TimeLimitExceeded):
            job_log.warning("attempt stopped", reason=str(exc), **fields)
        else:
            job_log.warning("attempt stopped", error_type=type(exc).__name__, error=str(exc)[:500], **fields)
