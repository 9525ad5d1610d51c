"""Prospeo (V2 API): people at a company via /search-person, their emails via /enrich-person."""

from __future__ import annotations

from typing import Any

import httpx

from tam.adapters.http import VendorHttp, excerpt
from tam.domain.model import (
    Company,
    Cost,
    EmailStatus,
    PermanentItemError,
    Person,
    Project,
    RateLimits,
    RateSignal,
    TransientProviderError,
    Usage,
)
from tam.ports.providers import EmailFinder, EmailFound, PeopleFound, PersonSearch

PROVIDER = "Prospeo"
SETTING = "PROSPEO_API_KEY"
PAGE_SIZE = 25  # Prospeo's fixed page size
DEFAULT_BASE_URL = "https://api.prospeo.io"
NOTHING_FOUND = frozenset({"NO_RESULTS", "NO_MATCH"})
# Documented with HTTP 400 but a Prospeo-side error: try again later (prospeo.io/api-docs error codes).
RETRYABLE = frozenset({"INTERNAL_ERROR"})


def _http(api_key: Any, base_url: str, concurrency: int, read_timeout: float) -> VendorHttp:
    return VendorHttp(
        provider=PROVIDER,
        setting=SETTING,
        base_url=base_url,
        api_key=api_key,
        auth_headers=lambda key: {"X-KEY": key, "Content-Type": "application/json"},
        concurrency=concurrency,
        read_timeout=read_timeout,
    )


def _error_code(http: VendorHttp, response: httpx.Response) -> tuple[str, Any]:
    """(error_code, body) for a 200 or 400 answer; other statuses are per-item errors."""
    body = http.json(response)
    if not isinstance(body, dict):
        raise PermanentItemError(PROVIDER, f"Prospeo: unexpected answer {excerpt(response.text, 80)!r}")
    if response.status_code == 200 and not body.get("error"):
        return "", body
    code = str(body.get("error_code") or body.get("message") or f"HTTP {response.status_code}")
    return code, body


def _reject(code: str, body: Any) -> PermanentItemError | TransientProviderError:
    if code in RETRYABLE:
        return TransientProviderError(PROVIDER, f"Prospeo: {code} (a Prospeo-side error; retried)")
    detail = body.get("filter_error") if isinstance(body, dict) else None
    return PermanentItemError(PROVIDER, f"Prospeo: {code}" + (f" ({excerpt(str(detail), 120)})" if detail else ""))


def _header(response: httpx.Response, name: str) -> float | None:
    try:
        return float(response.headers.get(name, ""))
    except ValueError:
        return None


def _rate(response: httpx.Response, requests: int = 1) -> RateSignal:
    """The plan's per-minute limit and what is left of it (`x-minute-rate-limit`,
    `x-minute-request-left`: the headers Prospeo's clients read), and the requests this call made."""
    return RateSignal(
        RateLimits(requests=_header(response, "x-minute-rate-limit")),
        RateLimits(requests=_header(response, "x-minute-request-left")),
        Cost(requests),
    )


class ProspeoPersonSearch(PersonSearch):
    def __init__(
        self, *, api_key: Any, base_url: str = DEFAULT_BASE_URL, concurrency: int = 10, read_timeout: float = 30.0
    ) -> None:
        self._http = _http(api_key, base_url, concurrency, read_timeout)

    async def search(self, project: Project, company: Company, limit: int) -> PeopleFound:
        filters: dict[str, Any] = {
            "company": {"websites": {"include": [company.domain]}},
            "max_person_per_company": max(1, min(limit, 100)),
        }
        if project.target_titles:
            filters["person_job_title"] = {"include": list(project.target_titles)}
        if project.target_seniorities:
            filters["person_seniority"] = {"include": list(project.target_seniorities)}
        people: list[Person] = []
        credits = 0
        page = 1
        while len(people) < limit:
            response = await self._http.request("POST", "/search-person", json={"page": page, "filters": filters})
            code, body = _error_code(self._http, response)
            if code in NOTHING_FOUND:
                break
            if code:
                raise _reject(code, body)
            results = body.get("results") or []
            if results:
                credits += 1  # billed per page that returned someone
            people.extend(p for p in (_person(r) for r in results) if p is not None)
            pagination = body.get("pagination") or {}
            if len(results) < PAGE_SIZE or page >= int(pagination.get("total_page") or page):
                break
            page += 1
        return PeopleFound(tuple(people[:limit]), Usage.of(prospeo_credits=credits), _rate(response, page))

    async def aclose(self) -> None:
        await self._http.aclose()


def _person(result: Any) -> Person | None:
    person = result.get("person") if isinstance(result, dict) else None
    if not isinstance(person, dict):
        return None
    first, last = person.get("first_name"), person.get("last_name")
    full = person.get("full_name") or " ".join(p for p in (first, last) if p)
    if not full:
        return None
    return Person(
        full_name=full,
        provider_person_id=person.get("person_id"),
        first_name=first,
        last_name=last,
        title=person.get("current_job_title"),
        linkedin_url=person.get("linkedin_url"),
    )


class ProspeoEmailFinder(EmailFinder):
    def __init__(
        self, *, api_key: Any, base_url: str = DEFAULT_BASE_URL, concurrency: int = 10, read_timeout: float = 30.0
    ) -> None:
        self._http = _http(api_key, base_url, concurrency, read_timeout)

    async def find_email(self, person: Person, company: Company) -> EmailFound:
        data: dict[str, Any] = {"company_website": company.domain, "company_name": company.name}
        if person.provider_person_id:
            data["person_id"] = person.provider_person_id
        if person.linkedin_url:
            data["linkedin_url"] = person.linkedin_url
        if person.first_name and person.last_name:
            data.update(first_name=person.first_name, last_name=person.last_name)
        else:
            data["full_name"] = person.full_name
        # only_verified_email off: an unverified address is still worth having, marked as such.
        body_out = {"only_verified_email": False, "enrich_mobile": False, "data": data}
        response = await self._http.request("POST", "/enrich-person", json=body_out)
        code, body = _error_code(self._http, response)
        if code in NOTHING_FOUND:
            return EmailFound(None, EmailStatus.NOT_FOUND, rate=_rate(response))  # not charged
        if code:
            raise _reject(code, body)
        # A match costs a credit even without an email, unless Prospeo says it is a free re-enrichment.
        billed = Usage.of(prospeo_credits=0 if body.get("free_enrichment") else 1)
        found = ((body.get("person") or {}).get("email")) or {}
        address = found.get("email") if isinstance(found, dict) else None
        if not address or "*" in address or found.get("revealed") is False:
            return EmailFound(None, EmailStatus.NOT_FOUND, billed, _rate(response))
        status = EmailStatus.VERIFIED if str(found.get("status", "")).upper() == "VERIFIED" else EmailStatus.UNVERIFIED
        return EmailFound(address.strip().lower(), status, billed, _rate(response))

    async def aclose(self) -> None:
        await self._http.aclose()
