"""Fake DiscoLike API: GET /discover with repeated query keys and the x-discolike-key header."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from tam_fakes.base import CountInFlight, FakeState, arrive, json_error, unit

PREFIXES = ["north", "blue", "bright", "clear", "iron", "swift", "green", "silver", "open", "deep", "cloud", "peak"]
CORES = ["wind", "stone", "field", "river", "leaf", "forge", "path", "light", "bridge", "wave", "grid", "gate"]
VARIANCES = {"LOW", "MID_LOW", "MEDIUM", "MID_HIGH", "HIGH", "UNRESTRICTED"}
_DETAILS = {401: "Invalid API key", 429: "Rate limit exceeded"}


def _error(status: int, kind: str, headers: dict[str, str]) -> JSONResponse:
    return json_error(status, {"detail": _DETAILS.get(status, "Internal server error")}, headers)


def _invalid(field: str, message: str) -> JSONResponse:
    return JSONResponse({"detail": [{"loc": ["query", field], "msg": message}]}, status_code=422)


def _bare(shown: str) -> str:
    text = shown.lower().split("://", 1)[-1].removeprefix("www.")
    return text.split("/", 1)[0]


def create_app(state: FakeState) -> Any:
    state.options.setdefault("records_billed", 0)

    def authorised(request: Request) -> bool:
        return request.headers.get("x-discolike-key") == state.api_key

    async def discover(request: Request) -> Response:
        _body, fault, answer = await arrive(request, state, authorised, _error)
        if answer is not None:
            return answer
        if fault is not None and fault.kind == "no_credits":
            return json_error(403, {"detail": "Account has reached the monthly usage limit"}, {})
        if fault is not None and fault.kind == "plan":  # 402/403 is the SDK's PlanAccessError
            return json_error(403, {"detail": "Your plan does not include this endpoint; upgrade to use it"}, {})
        q = request.query_params
        seeds = q.getlist("domain")
        if len(seeds) > 10:
            return _invalid("domain", "at most 10 domains")
        try:
            max_records = int(q.get("max_records", "100"))
        except ValueError:
            return _invalid("max_records", "must be an integer")
        if not 5 <= max_records <= 10_000:
            return _invalid("max_records", "must be between 5 and 10000")
        if q.get("variance", "UNRESTRICTED") not in VARIANCES:
            return _invalid("variance", f"one of {sorted(VARIANCES)}")
        if not (q.get("icp_text") or q.get("icp_prompt") or seeds):
            return json_error(400, {"detail": "give icp_text, icp_prompt or domain"}, {})
        countries = q.getlist("country") or ["US"]
        size = (q.get("employee_range") or "51,200").replace(",", "-")
        key = (q.get("icp_text"), tuple(seeds))
        # exclude_domain drops those domains from the results (and the bill); negate_domain is
        # deprecated: it steers the similarity away from its domains but excludes nothing.
        excluded = {d.lower() for d in q.getlist("exclude_domain")}
        if q.getlist("negate_domain"):
            state.options["deprecated_negate_domain"] = state.options.get("deprecated_negate_domain", 0) + 1
        available = int(state.options.get("available", 40))
        records: list[dict[str, Any]] = []
        for i in range(min(max_records, available)):
            prefix = PREFIXES[int(unit("p", key, i) * len(PREFIXES))]
            core = CORES[int(unit("c", key, i) * len(CORES))]
            domain = f"{prefix}{core}{i}.com"
            shown = domain
            if i % 7 == 3:
                shown = f"https://www.{domain.upper()}/about"  # messy spellings happen in real data
            if i % 11 == 5:
                shown = "not a domain"
            records.append(
                {
                    "domain": shown,
                    "name": f"{prefix.title()}{core} {i}",
                    "similarity": round(50 + unit("s", key, i) * 49, 1) if seeds else None,
                    "status": {"status": "active", "confidence": 1},
                    "score": 400,
                    "address": {"city": "Springfield", "country": countries[i % len(countries)]},
                    "social_urls": [f"https://linkedin.com/company/{prefix}{core}{i}"],
                    "description": f"{prefix.title()}{core} builds software for mid-sized teams.",
                    "employees": size,
                }
            )
        if records and len(records) > 2:
            records.append(dict(records[1]))  # the same company twice
        records = [r for r in records if _bare(str(r["domain"])) not in excluded]
        state.options["records_billed"] += len(records)
        return JSONResponse(records, headers={"X-Total-Count": str(len(records))})

    app = Starlette(routes=[Route("/discover", discover, methods=["GET"])])
    return CountInFlight(app, state)
