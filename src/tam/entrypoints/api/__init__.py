"""The HTTP API of design section 5."""

from tam.entrypoints.api.app import create_app

__all__ = ["create_app"]
