from __future__ import annotations

from tam.domain.model import TamError


class StorageError(TamError):
    """The database cannot be reached, lacks the schema or refused a request; names no secret."""


MIGRATE_HINT = "the tam tables are missing; run `tam migrate` first"
