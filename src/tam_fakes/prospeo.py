"""Fake Prospeo V2 API: POST /search-person and POST /enrich-person with the X-KEY header."""

from __future__ import annotations

import hashlib
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tam_fakes.base import CountInFlight, FakeState, arrive, unit

FIRST = ["Ana", "Ben", "Chloe", "Dario", "Emma", "Felix", "Grace", "Hugo", "Ines", "Jonas", "Kira", "Liam"]
LAST = ["Novak", "Okafor", "Muller", "Rossi", "Sato", "Silva", "Dubois", "Berg", "Costa", "Larsen"]
PAGE_SIZE = 25
_CODES = {401: "INVALID_API_KEY", 429: "RATE_LIMITED"}


def _error(status: int, kind: str, headers: dict[str, str], code: str | None = None) -> JSONResponse:
    code = code or _CODES.get(status, "INTERNAL_ERROR")
    return JSONResponse({"error": True, "error_code": code}, status_code=status, headers=headers)


def people_at(state: FakeState, domain: str) -> list[dict[str, Any]]:
    """Everyone the fake knows at `domain` (deterministic; `nobody` in the domain means none)."""
    label = domain.split(".")[0].replace("-", "")
    count = state.options.get("people", {}).get(domain)
    if count is None:
        count = 0 if "nobody" in domain else 1 + int(unit("people", domain) * 4)
    people = []
    for i in range(count):
        first = FIRST[int(unit("first", domain, i) * len(FIRST))]
        last = LAST[int(unit("last", domain, i) * len(LAST))]
        people.append(
            {
                "person_id": hashlib.sha1(f"{domain}:{i}".encode()).hexdigest()[:24],
                "first_name": first,
                "last_name": last,
                "full_name": f"{first} {last}",
                "linkedin_url": f"https://www.linkedin.com/in/{first}-{last}-{label}-{i}".lower(),
                "current_job_title": "Head of Sales",
                "headline": f"Working at {label}",
                "location": {"country": "United States", "country_code": "US"},
            }
        )
    return people


def email_outcome(person_id: str) -> str:
    """`VERIFIED`, `UNVERIFIED`, `NO_EMAIL` (the person matched, no email found) or `NO_MATCH`,
    fixed per person."""
    roll = unit("email", person_id)
    if roll < 0.15:
        return "NO_MATCH"
    return "NO_EMAIL" if roll < 0.2 else "VERIFIED" if roll < 0.75 else "UNVERIFIED"


def create_app(state: FakeState) -> Any:
    directory: dict[str, tuple[dict[str, Any], str]] = {}
    enriched: set[str] = set()
    state.options.setdefault("credits_used", 0)

    def authorised(request: Request) -> bool:
        return request.headers.get("x-key") == state.api_key

    def headers() -> dict[str, str]:
        # The plan's per-minute limit and what is left of it (help.prospeo.io "API rate limits": per
        # plan and endpoint group; header names as Prospeo's clients read them); 429 RATE_LIMITED past it.
        limit = int(state.rate_limit) if state.rate_limit > 0 else 180
        left = state.remaining() if state.rate_limit > 0 else 179
        return {
            "x-minute-rate-limit": str(limit),
            "x-minute-request-left": str(left),
            "x-daily-request-left": "249000",
        }

    def fault_answer(fault: Any) -> Response | None:
        if fault is not None and fault.kind == "no_credits":
            return _error(400, "", {}, "INSUFFICIENT_CREDITS")
        if fault is not None and fault.kind == "internal":  # documented with HTTP 400, and retryable
            return _error(400, "", {}, "INTERNAL_ERROR")
        return None

    async def search(request: Request) -> Response:
        body, fault, answer = await arrive(request, state, authorised, _error)
        if answer is not None:
            return answer
        if (failed := fault_answer(fault)) is not None:
            return failed
        filters = body.get("filters") if isinstance(body, dict) else None
        websites = (((filters or {}).get("company") or {}).get("websites") or {}).get("include")
        if not isinstance(filters, dict) or not websites:
            return JSONResponse(
                {"error": True, "error_code": "INVALID_FILTERS", "filter_error": "company.websites.include required"},
                status_code=400,
            )
        titles = ((filters.get("person_job_title") or {}).get("include")) or ["Head of Sales"]
        per_company = int(filters.get("max_person_per_company") or 100)
        results = []
        for website in websites:
            domain = str(website).removeprefix("https://").removeprefix("www.").strip("/")
            for i, person in enumerate(people_at(state, domain)[:per_company]):
                person = {**person, "current_job_title": titles[i % len(titles)]}
                directory[person["person_id"]] = (person, domain)
                company = {
                    "company_id": "c" + person["person_id"][:23],
                    "name": domain.split(".")[0].title(),
                    "website": f"https://{domain}",
                    "domain": domain,
                }
                results.append({"person": person, "company": company})
        page = int(body.get("page") or 1)
        if not results:
            return _error(400, "", {}, "NO_RESULTS")
        total_pages = (len(results) + PAGE_SIZE - 1) // PAGE_SIZE
        chunk = results[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        if not chunk:
            return _error(400, "", {}, "NO_RESULTS")
        state.options["credits_used"] += 1
        pagination = {
            "current_page": page,
            "per_page": PAGE_SIZE,
            "total_page": total_pages,
            "total_count": len(results),
        }
        return JSONResponse({"error": False, "results": chunk, "pagination": pagination}, headers=headers())

    async def enrich(request: Request) -> Response:
        body, fault, answer = await arrive(request, state, authorised, _error)
        if answer is not None:
            return answer
        if (failed := fault_answer(fault)) is not None:
            return failed
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, dict):
            return _error(400, "", {}, "INVALID_REQUEST")
        person_id = data.get("person_id")
        known = directory.get(person_id) if person_id else None
        if known is None:
            named = data.get("full_name") or (data.get("first_name") and data.get("last_name"))
            if not (data.get("linkedin_url") or (named and data.get("company_website"))):
                return _error(400, "", {}, "INVALID_DATAPOINTS")
            person_id = person_id or hashlib.sha1(repr(sorted(data.items())).encode()).hexdigest()[:24]
            first = data.get("first_name") or str(data.get("full_name") or "pat").split()[0]
            last = data.get("last_name") or "doe"
            domain = str(data.get("company_website") or "example.com")
            known = (
                {"person_id": person_id, "first_name": first, "last_name": last, "full_name": f"{first} {last}"},
                domain,
            )
        person, domain = known
        outcome = email_outcome(person["person_id"])
        if outcome == "NO_MATCH" or (outcome == "UNVERIFIED" and body.get("only_verified_email")):
            return _error(400, "", {}, "NO_MATCH")
        # A match costs a credit, email or not; re-enriching the same person is free (free_enrichment).
        free = person["person_id"] in enriched
        enriched.add(person["person_id"])
        if not free:
            state.options["credits_used"] += 1
        if outcome == "NO_EMAIL":
            answer_person = {**person, "email": {"status": "UNAVAILABLE", "revealed": False, "email": None}}
            return JSONResponse({"error": False, "free_enrichment": free, "person": answer_person}, headers=headers())
        address = f"{person['first_name']}.{person['last_name']}@{domain}".lower()
        email: dict[str, Any] = {
            "status": outcome,
            "revealed": True,
            "email": address,
            "verification_method": "SMTP",
            "email_mx_provider": "Google",
        }
        answer_person = {**person, "email": email, "mobile": {"status": "UNAVAILABLE", "revealed": False}}
        company = {"name": domain.split(".")[0].title(), "website": f"https://{domain}", "domain": domain}
        return JSONResponse(
            {"error": False, "free_enrichment": free, "person": answer_person, "company": company}, headers=headers()
        )

    async def account(request: Request) -> Response:
        _body, _fault, answer = await arrive(request, state, authorised, _error)
        if answer is not None:
            return answer
        return JSONResponse({"error": False, "response": {"current_plan": "PRO", "remaining_credits": 9999}})

    app = Starlette(
        routes=[
            Route("/search-person", search, methods=["POST"]),
            Route("/enrich-person", enrich, methods=["POST"]),
            Route("/account-information", account, methods=["GET", "POST"]),
        ]
    )
    return CountInFlight(app, state)
