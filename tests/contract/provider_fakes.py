"""Live provider adapters wired to fake vendor servers, for the provider contract suites."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tam.adapters.brightdata import BrightDataLinkedinChecker
from tam.adapters.claude import ClaudeQualifier
from tam.adapters.discolike import DiscolikeCompanySource
from tam.adapters.prospeo import ProspeoEmailFinder, ProspeoPersonSearch
from tam.domain.model import Company, Project
from tam_fakes import FakeServer

KEY = "fake-key-123"
READ_TIMEOUT = 0.5  # the fakes' `timeout` fault sleeps past it
VENDOR_OF = {
    "claude": "anthropic",
    "prospeo_search": "prospeo",
    "prospeo_enrich": "prospeo",
    "brightdata": "brightdata",
    "discolike": "discolike",
}


@contextmanager
def fake(vendor: str) -> Iterator[FakeServer]:
    with FakeServer(vendor, api_key=KEY, timeout_sleep=READ_TIMEOUT * 3) as server:
        yield server


def live_adapter(kind: str, url: str, key: str | None = KEY, **extra: Any) -> Any:
    common: dict[str, Any] = {"api_key": key, "base_url": url}
    if kind == "claude":
        model, timeout = extra.pop("model", "claude-sonnet-5-5"), extra.pop("timeout", READ_TIMEOUT)
        return ClaudeQualifier(model=model, timeout=timeout, **common, **extra)
    if kind == "prospeo_search":
        return ProspeoPersonSearch(read_timeout=READ_TIMEOUT, **common, **extra)
    if kind == "prospeo_enrich":
        return ProspeoEmailFinder(read_timeout=READ_TIMEOUT, **common, **extra)
    if kind == "brightdata":
        return BrightDataLinkedinChecker(read_timeout=READ_TIMEOUT, poll_interval=(0.02, 0.5), **common, **extra)
    if kind == "discolike":
        return DiscolikeCompanySource(read_timeout=READ_TIMEOUT, **common, **extra)
    raise ValueError(kind)


def project(**changes: Any) -> Project:
    fields: dict[str, Any] = {
        "name": "Acme TAM",
        "icp": "B2B SaaS companies selling to mid-sized logistics firms in Europe and North America",
        "target_titles": ("Head of Sales", "VP Sales"),
        "target_seniorities": ("Head", "Vice President"),
        "countries": ("US", "GB"),
        "employee_range": "51,500",
        "max_contacts_per_company": 3,
    }
    fields.update(changes)
    return Project(**fields)


def company(domain: str = "northwind3.com", **changes: Any) -> Company:
    label = domain.split(".")[0]
    fields: dict[str, Any] = {
        "id": uuid.uuid4(),
        "project_id": uuid.uuid4(),
        "name": label.title(),
        "domain": domain,
        "description": f"{label.title()} builds route planning software.",
        "country": "US",
        "employee_range": "51,200",
        "linkedin_url": f"https://www.linkedin.com/company/{label}",
    }
    fields.update(changes)
    return Company(**fields)
