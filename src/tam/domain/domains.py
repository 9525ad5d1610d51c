"""Domain-name normalisation: `https://www.Acme.com/about` and `acme.com` are one company."""

from __future__ import annotations

import re

from tam.domain.model import InvalidInput

_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]*://")
MAX_LENGTH = 253  # a DNS name's limit (RFC 1035), in its ASCII (IDNA) form


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
        raise InvalidInput(f"{_shown(raw)} is not a usable domain") from None
    if len(text) > MAX_LENGTH:
        raise InvalidInput(f"{_shown(raw)} is not a usable domain (longer than {MAX_LENGTH} characters)")
    labels = text.split(".")
    if len(labels) < 2 or not all(_LABEL.match(label) for label in labels):
        raise InvalidInput(f"{_shown(raw)} is not a usable domain")
    if labels[-1].isdigit():
        raise InvalidInput(f"{_shown(raw)} is an IP address, not a domain")
    return text


def try_normalise(raw: str | None) -> str | None:
    try:
        return normalise_domain(raw)
    except InvalidInput:
        return None


def _shown(raw: str | None) -> str:
    """The value as the user gave it, cut short enough for a one-line error."""
    text = raw or ""
    return repr(text if len(text) <= 60 else text[:57] + "...")
