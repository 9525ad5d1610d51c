from __future__ import annotations

from tam.domain.model import RejectedValue, StorageUnavailable, TamError


class StorageError(TamError):
    """The database cannot be reached, lacks the schema or refused a request; names no secret."""


class StorageUnreachable(StorageError, StorageUnavailable):
    """The database is away for now (connection refused or lost, restarting, out of connections): a job
    waits it out, a request answers 503."""


__all__ = ["MIGRATE_HINT", "RejectedValue", "StorageError", "StorageUnreachable"]

MIGRATE_HINT = "the tam tables are missing; run `tam migrate` first"
