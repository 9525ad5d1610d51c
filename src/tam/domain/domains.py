"""Domain-name normalisation: `https://www.Acme.com/about` and `acme.com` are one company."""

from __future__ import annotations

import re

from tam.domain.model import InvalidInput

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")


def normalise_domain(raw: str | None) -> str:
    """Lower case, no scheme, credentials, `www.`, port, path, query or trailing dot.

    Raises InvalidInput when nothing usable is left (no dot, bad characters, an IP address).
    """
    text = (raw or "").strip().lower()
    if not text:
        raise InvalidInput("domain is empty")
    text = _SCHEME.sub("", text)
    text = text.split("/", 1)[0].split("?", 1)[0].split("#", 1)[0]
    text = text.rsplit("@", 1)[-1]
    text = text.split(":", 1)[0].rstrip(".")
    if text.startswith("www.") and "." in text[4:]:
        text = text[4:]
    try:
        text = text.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidInput(f"{raw!r} is not a usable domain") from None
    labels = text.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise InvalidInput(f"{raw!r} is not a usable domain")
    if labels[-1].isdigit():
        raise InvalidInput(f"{raw!r} is an IP address, not a domain")
    return text


def try_normalise(raw: str | None) -> str | None:
    try:
        return normalise_domain(raw)
    except InvalidInput:
        return None
