"""DiscolikeCompanySource: GET /discover from the ICP text, or lookalikes of up to ten seed domains."""

from __future__ import annotations

from typing import Any

from tam.adapters.http import VendorHttp, excerpt
from tam.domain.domains import try_normalise
from tam.domain.model import CompanySourceKind, NewCompany, PermanentItemError, Usage
from tam.ports.providers import CompanySource, Discovery, DiscoveryQuery

PROVIDER = "DiscoLike"
SETTING = "DISCOLIKE_API_KEY"
DEFAULT_BASE_URL = "https://api.discolike.com/v1"
MAX_SEEDS = 10
# exclude_domain replaces the deprecated negate_domain; the list travels in the query string, so it
# is bounded to keep the URL well under common 16 KB limits.
MAX_EXCLUDED = 250


class DiscolikeCompanySource(CompanySource):
    def __init__(
        self,
        *,
        api_key: Any,
        base_url: str = DEFAULT_BASE_URL,
        concurrency: int = 1,
        read_timeout: float = 120.0,
        variance: str = "MEDIUM",
    ) -> None:
        self._http = VendorHttp(
            provider=PROVIDER,
            setting=SETTING,
            base_url=base_url,
            api_key=api_key,
            auth_headers=lambda key: {"x-discolike-key": key},
            concurrency=concurrency,
            read_timeout=read_timeout,
        )
        # The API defaults to UNRESTRICTED; the vendor advises always setting it.
        self._variance = variance

    def params(self, query: DiscoveryQuery) -> list[tuple[str, str]]:
        """Arrays go as repeated keys (`country=US&country=GB`), as the API expects."""
        params: list[tuple[str, str]] = [
            ("max_records", str(max(5, min(query.max_records, 10_000)))),
            ("variance", self._variance),
        ]
        if query.icp_text.strip():
            params.append(("icp_text", query.icp_text.strip()))
        params += [("country", c.upper()) for c in query.countries]
        if query.employee_range:
            params.append(("employee_range", query.employee_range))
        params += [("domain", d) for d in query.seed_domains[:MAX_SEEDS]]
        params += [("exclude_domain", d) for d in query.exclude_domains[:MAX_EXCLUDED]]
        return params

    async def discover(self, query: DiscoveryQuery) -> Discovery:
        response = await self._http.request("GET", "/discover", params=self.params(query))
        if response.status_code != 200:
            detail = self._detail(response)
            raise PermanentItemError(PROVIDER, f"DiscoLike rejected the search: HTTP {response.status_code} {detail}")
        body = self._http.json(response)
        if not isinstance(body, list):
            raise PermanentItemError(PROVIDER, "DiscoLike: expected a list of companies")
        source = CompanySourceKind.DISCOLIKE_REFINE if query.seed_domains else CompanySourceKind.DISCOLIKE
        skip = set(query.seed_domains) | set(query.exclude_domains)
        companies: dict[str, NewCompany] = {}
        for profile in body:
            company = _company(profile, source)
            if company is not None and company.domain not in skip and company.domain not in companies:
                companies[company.domain] = company
        # Billing counts every record returned, kept or not.
        return Discovery(tuple(companies.values()), Usage.of(discolike_records=len(body)))

    def _detail(self, response: Any) -> str:
        try:
            detail = response.json().get("detail")
        except (ValueError, AttributeError):
            detail = response.text
        return excerpt(str(detail), 160)

    async def aclose(self) -> None:
        await self._http.aclose()


def _company(profile: Any, source: CompanySourceKind) -> NewCompany | None:
    if not isinstance(profile, dict):
        return None
    domain = try_normalise(profile.get("domain"))
    if domain is None:
        return None
    address: dict[str, Any] = profile["address"] if isinstance(profile.get("address"), dict) else {}
    linkedin = next((u for u in profile.get("social_urls") or [] if "linkedin.com/company/" in str(u)), None)
    similarity = profile.get("similarity")
    return NewCompany(
        name=str(profile.get("name") or domain),
        domain=domain,
        source=source,
        description=profile.get("description") or None,
        country=(address.get("country") or None),
        employee_range=_employees(profile.get("employees")),
        linkedin_url=linkedin,
        similarity=float(similarity) if isinstance(similarity, int | float) else None,
    )


def _employees(value: Any) -> str | None:
    """DiscoLike says `201-500`; tam stores ranges as `201,500` (the filter's own format)."""
    if not value:
        return None
    return str(value).replace("-", ",").replace("+", ",+").replace(",,", ",")
