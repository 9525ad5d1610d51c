"""BrightDataLinkedinChecker: the LinkedIn people-profiles dataset, ≤20 URLs per synchronous scrape."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from tam.adapters.http import VendorHttp, excerpt, is_account_problem, parse_retry_after
from tam.domain.model import CredentialError, PermanentItemError, TransientProviderError, Usage
from tam.ports.providers import LinkedinCheck, LinkedinChecker, LinkedinChecks, LinkedinTarget

PROVIDER = "Bright Data"
SETTING = "BRIGHT_DATA_API_KEY"
DEFAULT_BASE_URL = "https://api.brightdata.com"
DEFAULT_DATASET_ID = "gd_l1viktl72bvl7bjuj0"
_COMPANY_SLUG = re.compile(r"linkedin\.com/company/([^/?#]+)", re.IGNORECASE)
_LEGAL_SUFFIX = re.compile(r"\b(inc|llc|ltd|limited|gmbh|ag|sa|sas|bv|plc|corp|corporation|co|company)\b\.?")


class BrightDataLinkedinChecker(LinkedinChecker):
    max_batch = 20

    def __init__(
        self,
        *,
        api_key: Any,
        base_url: str = DEFAULT_BASE_URL,
        dataset_id: str = DEFAULT_DATASET_ID,
        concurrency: int = 5,
        # The sync scrape holds the request open for up to a minute before answering 202.
        read_timeout: float = 75.0,
        poll_interval: tuple[float, float] = (1.0, 10.0),
        snapshot_budget: float = 240.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self._http = VendorHttp(
            provider=PROVIDER,
            setting=SETTING,
            base_url=base_url,
            api_key=api_key,
            auth_headers=lambda key: {"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
            concurrency=concurrency,
            read_timeout=read_timeout,
        )
        self._dataset_id = dataset_id
        self._poll_min, self._poll_max = poll_interval
        self._budget = snapshot_budget
        self._sleep = sleep
        # Snapshots still running when a call gave up: a retry of the same batch polls them
        # instead of paying for a second scrape.
        self._pending: dict[frozenset[str], str] = {}

    async def check(self, targets: Sequence[LinkedinTarget]) -> LinkedinChecks:
        if len(targets) > self.max_batch:
            raise PermanentItemError(PROVIDER, f"Bright Data: at most {self.max_batch} profiles per call")
        if not targets:
            return LinkedinChecks(())
        key = frozenset(t.url for t in targets)
        snapshot_id = self._pending.get(key)
        if snapshot_id is None:
            records, snapshot_id, wait = await self._scrape(targets)
            if snapshot_id is not None:
                self._pending[key] = snapshot_id
                records = await self._await_snapshot(snapshot_id, wait)
        else:
            records = await self._await_snapshot(snapshot_id, None)
        self._pending.pop(key, None)
        return _judge(targets, records)

    async def _scrape(self, targets: Sequence[LinkedinTarget]) -> tuple[list[Any], str | None, float | None]:
        params = {"dataset_id": self._dataset_id, "format": "json", "include_errors": "true"}
        response = await self._http.request(
            "POST", "/datasets/v3/scrape", params=params, json=[{"url": t.url} for t in targets]
        )
        if response.status_code == 202:
            body = self._http.json(response)
            snapshot_id = body.get("snapshot_id") if isinstance(body, dict) else None
            if not snapshot_id:
                raise PermanentItemError(PROVIDER, "Bright Data: 202 without a snapshot_id")
            return [], str(snapshot_id), parse_retry_after(response.headers)
        if response.status_code != 200:
            raise PermanentItemError(
                PROVIDER, f"Bright Data rejected the batch: HTTP {response.status_code} {excerpt(response.text, 160)}"
            )
        return _records(self._body(response)), None, None

    async def _await_snapshot(self, snapshot_id: str, wait: float | None) -> list[Any]:
        """Polls progress, then downloads; bounded by `snapshot_budget`, each pause capped."""
        deadline = time.monotonic() + self._budget
        while True:
            await self._pause(wait, deadline, snapshot_id)
            progress = await self._http.request("GET", f"/datasets/v3/progress/{snapshot_id}")
            wait = parse_retry_after(progress.headers)
            if progress.status_code == 404:
                self._forget(snapshot_id)
                raise TransientProviderError(PROVIDER, f"Bright Data: snapshot {snapshot_id} does not exist")
            body = self._http.json(progress)
            status = str(body.get("status", "")) if isinstance(body, dict) else ""
            if status == "failed":
                self._forget(snapshot_id)
                reason = body.get("error_message", "no reason given")
                raise TransientProviderError(PROVIDER, f"Bright Data: snapshot {snapshot_id} failed ({reason})")
            if status != "ready":
                continue
            download = await self._http.request(
                "GET", f"/datasets/v3/snapshot/{snapshot_id}", params={"format": "json"}
            )
            if download.status_code == 200:
                return _records(self._body(download))
            if download.status_code != 202:
                self._forget(snapshot_id)
                raise PermanentItemError(
                    PROVIDER,
                    f"Bright Data: snapshot download HTTP {download.status_code} {excerpt(download.text, 120)}",
                )
            wait = parse_retry_after(download.headers)

    def _body(self, response: Any) -> Any:
        """A 200 may carry an account problem as plain text ("Account is suspended"): that is the
        key's account, not this batch."""
        if is_account_problem(response.text[:200]) and not response.text.lstrip().startswith(("[", "{")):
            raise CredentialError(
                PROVIDER,
                f"Bright Data: the account of the key in {SETTING} is unusable ({excerpt(response.text, 120)})",
                setting=SETTING,
            )
        return self._http.json(response)

    async def _pause(self, wait: float | None, deadline: float, snapshot_id: str) -> None:
        pause = min(max(wait if wait is not None else self._poll_min, self._poll_min), self._poll_max)
        if time.monotonic() + pause > deadline:
            # Give the slot back; the runner retries later and this batch resumes the same snapshot.
            raise TransientProviderError(
                PROVIDER, f"Bright Data: snapshot {snapshot_id} still running", retry_after=pause
            )
        await self._sleep(pause)

    def _forget(self, snapshot_id: str) -> None:
        self._pending = {k: v for k, v in self._pending.items() if v != snapshot_id}

    async def aclose(self) -> None:
        await self._http.aclose()


def _records(body: Any) -> list[Any]:
    if isinstance(body, dict) and isinstance(body.get("data"), list):
        body = body["data"]
    if not isinstance(body, list):
        raise PermanentItemError(PROVIDER, "Bright Data: expected a list of records")
    return [r for r in body if isinstance(r, dict)]


def url_key(url: str) -> str:
    text = url.strip().lower().split("?", 1)[0].split("#", 1)[0].rstrip("/")
    text = re.sub(r"^[a-z]+://", "", text)
    return re.sub(r"^([a-z]{2,3}\.|www\.)(?=linkedin\.com)", "", text)


def _record_url(record: dict[str, Any]) -> str | None:
    source = record.get("input")
    if isinstance(source, dict) and source.get("url"):
        return str(source["url"])
    for field in ("input_url", "url"):
        if record.get(field):
            return str(record[field])
    return None


def _judge(targets: Sequence[LinkedinTarget], records: list[Any]) -> LinkedinChecks:
    by_url: dict[str, dict[str, Any]] = {}
    for record in records:
        url = _record_url(record)
        if url:
            by_url.setdefault(url_key(url), record)
    checks = []
    billed = 0
    for target in targets:
        record = by_url.get(url_key(target.url))
        if record is None:
            checks.append(LinkedinCheck(target.contact_id, None, "no record returned for this profile"))
            continue
        if not record.get("error_code") and not record.get("error"):
            billed += 1  # Bright Data bills successful records only
        checks.append(judge_record(target, record))
    return LinkedinChecks(tuple(checks), Usage.of(brightdata_records=billed))


def judge_record(target: LinkedinTarget, record: dict[str, Any]) -> LinkedinCheck:
    code = record.get("error_code")
    if code == "dead_page":
        return LinkedinCheck(target.contact_id, False, "profile is gone (dead_page)")
    if code or record.get("error"):
        return LinkedinCheck(target.contact_id, None, f"could not check: {code or excerpt(str(record['error']), 80)}")
    if record.get("memorialized_account"):
        return LinkedinCheck(target.contact_id, False, "memorialized account")
    current: dict[str, Any] = record["current_company"] if isinstance(record.get("current_company"), dict) else {}
    company_id = current.get("company_id") or record.get("current_company_company_id")
    name = current.get("name") or record.get("current_company_name")
    link = current.get("link")
    if not (company_id or name or link):
        return LinkedinCheck(target.contact_id, None, "profile shows no current employer")
    if _same_company(target, company_id, name, link):
        return LinkedinCheck(target.contact_id, True, f"current company is {name or company_id}")
    return LinkedinCheck(target.contact_id, False, f"now works at {name or company_id}, not {target.company_name}")


def _slug(url: str | None) -> str | None:
    match = _COMPANY_SLUG.search(url or "")
    return match.group(1).lower() if match else None


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", _LEGAL_SUFFIX.sub("", text.lower()))


def _same_company(target: LinkedinTarget, company_id: Any, name: Any, link: Any) -> bool:
    wanted_slug = _slug(target.company_linkedin_url)
    seen_slugs = {s for s in (str(company_id).lower() if company_id else None, _slug(link)) if s}
    if wanted_slug and wanted_slug in seen_slugs:
        return True
    candidates = {_squash(str(v)) for v in (name, company_id) if v} - {""}
    wanted = {_squash(target.company_name), _squash(target.company_domain.split(".")[0])} - {""}
    if wanted_slug:
        wanted.add(_squash(wanted_slug))
    return bool(candidates & wanted)
