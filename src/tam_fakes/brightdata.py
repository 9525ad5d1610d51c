"""Fake Bright Data Web Scraper API (datasets v3): scrape, progress and snapshot download."""

from __future__ import annotations

import re
import uuid
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from tam_fakes.base import CountInFlight, FakeState, Recorded, arrive, text_error, unit
from tam_fakes.ratelimit import RefusalBlock

DATASET_ID = "gd_l1viktl72bvl7bjuj0"
_PROFILE = re.compile(r"^https?://([a-z]{2,3}\.)?(www\.)?linkedin\.com/in/([^/?#]+)/?", re.IGNORECASE)
_TEXTS = {
    401: "Invalid credentials",
    429: "You have too many running jobs for this dataset. Running jobs: 100>=100",
    500: "Internal server error",
}


def _error(status: int, kind: str, headers: dict[str, str]) -> PlainTextResponse:
    return text_error(status, _TEXTS.get(status, f"Error {status}"), headers)


def profile_for(state: FakeState, url: str) -> dict[str, Any]:
    """The record for one profile URL. Slugs look like Prospeo's fake: `first-last-company-0`.
    `gone`/`ghost` in the slug is a dead page, `blocked` a crawl error; 20% moved employer."""
    override = state.options.get("profiles", {}).get(url)
    if override is not None:
        return {"input": {"url": url}, "url": url, "input_url": url, **override}
    match = _PROFILE.match(url)
    slug = match.group(3).lower() if match else ""
    if "gone" in slug or "ghost" in slug:
        return {
            "timestamp": "2026-11-29T00:00:00Z",
            "input": {"url": url},
            "error": "4XX page - dead page.",
            "error_code": "dead_page",
        }
    if "blocked" in slug:
        return {"timestamp": "2026-11-29T00:00:00Z", "input": {"url": url}, "error": "Blocked", "error_code": "blocked"}
    parts = slug.split("-")
    company = parts[-2] if len(parts) >= 4 and parts[-1].isdigit() else (parts[-1] if parts else "unknown")
    if unit("moved", url) < 0.2:
        company = "othercorp"
    name = company.title()
    return {
        "id": slug,
        "linkedin_id": slug,
        "name": " ".join(p.title() for p in parts[:2]),
        "url": url,
        "input_url": url,
        "input": {"url": url},
        "current_company": {
            "company_id": company,
            "name": name,
            "link": f"https://www.linkedin.com/company/{company}?trk=public_profile",
            "location": None,
        },
        "current_company_name": name,
        "current_company_company_id": company,
        "memorialized_account": False,
        "followers": 100,
        "connections": 100,
    }


def expected_active(url: str) -> bool | None:
    """What the adapter should conclude for Prospeo-fake slugs (matching company by slug)."""
    slug = url.rstrip("/").rsplit("/", 1)[-1]
    if "gone" in slug or "ghost" in slug:
        return False
    if "blocked" in slug:
        return None
    return unit("moved", url) >= 0.2


def create_app(state: FakeState) -> Any:
    # Tests may reach in: state.options["snapshots"][snapshot_id]["polls"] = 0 makes it ready.
    snapshots: dict[str, dict[str, Any]] = state.options.setdefault("snapshots", {})
    state.options.setdefault("records_billed", 0)

    def authorised(request: Request) -> bool:
        return request.headers.get("authorization") == f"Bearer {state.api_key}"

    # "An IP that gets 25 or more 429s within 5 minutes is blocked until support clears it"
    # (docs.brightdata.com/products/scrapers/limits); the block answers 403 from then on.
    block = RefusalBlock(int(state.options.get("block_after", 25)), float(state.options.get("block_window", 300)))
    state.options["blocked"] = block
    running = 0

    def build(body: list[Any]) -> list[dict[str, Any]]:
        records = [profile_for(state, str(item["url"])) for item in body]
        state.options["records_billed"] += sum(1 for r in records if "error_code" not in r)
        return records

    async def scrape(request: Request) -> Response:
        nonlocal running
        if block.blocked:
            return text_error(403, "Your IP has been blocked after too many 429 responses. Contact support.", {})
        most = state.options.get("max_running")  # 429 beyond this many running jobs (the documented text)
        if most is not None and running >= int(most):
            block.refused()
            state.throttled += 1
            state.options.update(refusals_peak=block.peak, ip_blocked=int(block.blocked))
            state.requests.append(Recorded(request.method, request.url.path, [], dict(request.headers), None))
            return text_error(
                429, f"You have too many running jobs for this dataset. Running jobs: {running}>={most}", {}
            )
        running += 1
        try:
            return await scrape_admitted(request)
        finally:
            running -= 1

    async def scrape_admitted(request: Request) -> Response:
        body, fault, answer = await arrive(request, state, authorised, _error)
        if answer is not None:
            return answer
        if fault is not None and fault.kind == "suspended":  # account problems come as text in a 200
            return PlainTextResponse("Account is suspended", status_code=200)
        if not request.query_params.get("dataset_id"):
            return text_error(404, "Collector not found", {})
        if request.query_params["dataset_id"] != state.options.get("dataset_id", DATASET_ID):
            return text_error(404, "dataset does not exist", {})
        if not isinstance(body, list) or not body:
            return text_error(400, "No data to trigger", {})
        if len(body) > 20:
            return text_error(400, "Too many inputs: at most 20 for a synchronous request", {})
        bad = [item for item in body if not isinstance(item, dict) or not _PROFILE.match(str(item.get("url", "")))]
        if bad:
            return JSONResponse(
                {
                    "error": "Invalid input provided",
                    "code": "validation_error",
                    "errors": [["url", "Value should match pattern .*linkedin\\.com/(?!company).*"]],
                },
                status_code=400,
            )
        records = build(body)
        if request.query_params.get("include_errors") != "true":
            records = [r for r in records if "error_code" not in r]
        if state.options.get("async_scrape"):
            snapshot_id = "s_" + uuid.uuid4().hex[:16]
            snapshots[snapshot_id] = {"records": records, "polls": int(state.options.get("progress_polls", 1))}
            retry_after = str(state.options.get("snapshot_retry_after", 10))
            return JSONResponse(
                {
                    "snapshot_id": snapshot_id,
                    "message": "Your request is still in progress and may take a few minutes.",
                },
                status_code=202,
                headers={"retry-after": retry_after},
            )
        return JSONResponse(records)

    async def progress(request: Request) -> Response:
        _body, _fault, answer = await arrive(request, state, authorised, _error)
        if answer is not None:
            return answer
        snapshot_id = request.path_params["snapshot_id"]
        snap = snapshots.get(snapshot_id)
        if snap is None:
            return text_error(404, "Snapshot does not exist", {})
        if state.options.get("snapshot_fails"):
            return JSONResponse({"snapshot_id": snapshot_id, "status": "failed", "error_message": "crawl failed"})
        status = "running" if snap["polls"] > 0 else "ready"
        snap["polls"] -= 1
        return JSONResponse({"snapshot_id": snapshot_id, "dataset_id": DATASET_ID, "status": status})

    async def download(request: Request) -> Response:
        _body, _fault, answer = await arrive(request, state, authorised, _error)
        if answer is not None:
            return answer
        snap = snapshots.get(request.path_params["snapshot_id"])
        if snap is None:
            return text_error(404, "Snapshot does not exist", {})
        if snap["polls"] >= 0:
            return JSONResponse(
                {"status": "running", "message": "Snapshot is not ready yet, try again in 10s"}, status_code=202
            )
        return JSONResponse(snap["records"])

    app = Starlette(
        routes=[
            Route("/datasets/v3/scrape", scrape, methods=["POST"]),
            Route("/datasets/v3/progress/{snapshot_id}", progress, methods=["GET"]),
            Route("/datasets/v3/snapshot/{snapshot_id}", download, methods=["GET"]),
        ]
    )
    return CountInFlight(app, state)
