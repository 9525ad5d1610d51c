"""Logging for every runtime: structlog renders both structlog and stdlib records (the domain logs
through stdlib `logging`), binds `job_id`/`project_id` from context variables, and masks secrets."""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Awaitable, Callable, Iterable, Iterator
from typing import Any, TextIO
from urllib.parse import urlsplit
from uuid import UUID

import structlog
from structlog.typing import EventDict, Processor

from tam.domain.model import Job
from tam.ports.storage import JobRepo

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


def configure_logging(
    *, json: bool, secrets: Iterable[str] = (), level: int = logging.INFO, stream: TextIO | None = None
) -> None:
    """Route structlog and stdlib logging to one handler on `stream` (stderr): JSON lines for
    servers and workers, coloured text for a terminal. Safe to call again (tests, re-configuration)."""
    _redactor.secrets = Redactor(secrets).secrets
    shared: list[Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Processor = structlog.processors.JSONRenderer() if json else structlog.dev.ConsoleRenderer(colors=False)
    final: list[Processor] = [structlog.stdlib.ProcessorFormatter.remove_processors_meta]
    if json:
        final += [structlog.processors.dict_tracebacks]
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
    for noisy in ("httpx", "httpcore", "hpack"):  # request lines carry URLs and headers, not our events
        logging.getLogger(noisy).setLevel(logging.WARNING)
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )


@contextlib.contextmanager
def job_context(job_id: UUID, project_id: UUID) -> Iterator[None]:
    """Every log line in this block (and in tasks it starts) carries the job and project ids."""
    with structlog.contextvars.bound_contextvars(job_id=str(job_id), project_id=str(project_id)):
        yield


Execute = Callable[[UUID, float | None, bool], Awaitable[Job]]


class JobLogContext:
    """Wraps one delivery of a job (ExecuteJob) so that the runner's and the worker's log lines for
    it carry `job_id` and `project_id`. Context variables are per task, so concurrent jobs on one
    event loop keep their own ids."""

    def __init__(self, execute: Execute, jobs: JobRepo) -> None:
        self._execute = execute
        self._jobs = jobs

    async def __call__(self, job_id: UUID, time_limit: float | None, last_attempt: bool = True) -> Job:
        job = await self._jobs.get(job_id)
        with job_context(job_id, job.project_id):
            return await self._execute(job_id, time_limit, last_attempt)
