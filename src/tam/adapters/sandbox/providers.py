from __future__ import annotations

import hashlib
import math
import random
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

from tam.domain.model import (
    Company,
    CompanySourceKind,
    Cost,
    EmailStatus,
    NewCompany,
    Person,
    Project,
    TransientProviderError,
    Usage,
)
from tam.ports.providers import (
    CallForecast,
    Discovery,
    DiscoveryQuery,
    EmailFound,
    LinkedinCheck,
    LinkedinChecks,
    LinkedinTarget,
    PeopleFound,
    Verdict,
)
from tam.ports.runtime import Clock

_PREFIXES = [
    "North",
    "Blue",
    "Bright",
    "Clear",
    "Iron",
    "Swift",
    "Green",
    "Silver",
    "Open",
    "True",
    "Deep",
    "Red",
    "Cloud",
    "Peak",
    "Harbor",
    "Atlas",
]
_CORES = [
    "wind",
    "stone",
    "field",
    "river",
    "leaf",
    "forge",
    "path",
    "light",
    "bridge",
    "wave",
    "grid",
    "point",
    "line",
    "spring",
    "gate",
    "ridge",
]
_KINDS = [
    "Analytics",
    "Labs",
    "Software",
    "Systems",
    "Health",
    "Logistics",
    "Robotics",
    "Security",
    "Payments",
    "Data",
    "AI",
    "Networks",
]
_FIRST = [
    "Ana",
    "Ben",
    "Chloé",
    "Dario",
    "Emma",
    "Felix",
    "Grace",
    "Hugo",
    "Ines",
    "Jonas",
    "Kira",
    "Liam",
    "Maya",
    "Noah",
    "Olga",
    "Pavel",
    "Rosa",
    "Sami",
]
_LAST = [
    "Novak",
    "Okafor",
    "Müller",
    "Rossi",
    "Sato",
    "Silva",
    "Dubois",
    "Berg",
    "Costa",
    "Kowalski",
    "Haddad",
    "Larsen",
    "Moreau",
    "Ito",
    "Nagy",
]
_COUNTRIES = ("US", "GB", "DE", "FR", "NL", "CA")
_SIZES = ("11,50", "51,200", "201,500", "501,1000")


@dataclass
class SandboxBehaviour:
    """How simulated providers answer: `seed` fixes the answers, latency is log-normal with the
    given mean (seconds), and `fault_rate` of calls raise a transient error (429/5xx/timeout)."""

    clock: Clock
    seed: int = 7
    latency: float = 0.0
    sigma: float = 0.5
    fault_rate: float = 0.0

    def __post_init__(self) -> None:
        self._timing = random.Random(self.seed)

    def rng(self, *key: object) -> random.Random:
        digest = hashlib.sha256(repr((self.seed, *key)).encode()).digest()
        return random.Random(int.from_bytes(digest[:8], "big"))

    async def call(self, provider: str, scale: float = 1.0) -> None:
        if self.latency > 0:
            mu = math.log(self.latency * scale) - self.sigma**2 / 2  # so the mean is `latency`
            await self.clock.sleep(self._timing.lognormvariate(mu, self.sigma))
        if self.fault_rate and self._timing.random() < self.fault_rate:
            kind = self._timing.choice(("429 rate limited", "503 unavailable", "timeout"))
            retry_after = 0.2 if kind.startswith("429") else None
            raise TransientProviderError(
                provider, f"{provider} (sandbox): {kind}", retry_after=retry_after, throttled=kind.startswith("429")
            )


class SandboxQualifier:
    def __init__(self, behaviour: SandboxBehaviour, qualify_rate: float = 0.45) -> None:
        self._b = behaviour
        self._rate = qualify_rate

    async def qualify(self, project: Project, company: Company) -> Verdict:
        await self._b.call("Claude")
        rng = self._b.rng("qualify", company.domain)
        fits = rng.random() < self._rate
        size = company.employee_range or "unknown size"
        reason = (
            f"{company.name} ({size}) matches the ICP: {project.icp[:60]}"
            if fits
            else f"{company.name} sells outside the ICP or is the wrong size ({size})"
        )
        tokens = 400 + rng.randrange(200)
        return Verdict(fits, reason, Usage.of(claude_input_tokens=tokens, claude_output_tokens=40))

    def cost(self, project: Project, company: Company) -> Cost:
        return Cost(1, 500, 40)


class SandboxUsageForecaster:
    """What a SandboxQualifier call uses: 400 to 599 input tokens (500 on average), 40 output."""

    def qualify_call(
        self, project: Project, company: Company, *, warm_cache: bool, output_tokens: float | None = None
    ) -> CallForecast:
        answer = round(output_tokens) if output_tokens is not None else 40
        return CallForecast(
            Usage.of(claude_input_tokens=500, claude_output_tokens=answer),
            Usage.of(claude_input_tokens=600, claude_output_tokens=40),
        )


class SandboxCompanySource:
    def __init__(self, behaviour: SandboxBehaviour) -> None:
        self._b = behaviour

    async def discover(self, query: DiscoveryQuery) -> Discovery:
        await self._b.call("DiscoLike", scale=3.0)
        rng = self._b.rng("discover", query.icp_text, query.seed_domains)
        companies: dict[str, NewCompany] = {}
        excluded = set(query.exclude_domains) | set(query.seed_domains)
        while len(companies) < query.max_records:
            name = f"{rng.choice(_PREFIXES)}{rng.choice(_CORES)} {rng.choice(_KINDS)}"
            domain = name.lower().replace(" ", "") + rng.choice((".com", ".io", ".co"))
            if domain in excluded or domain in companies:
                if len(companies) + len(excluded) >= 16 * 16 * 12 * 3:
                    break
                continue
            companies[domain] = NewCompany(
                name=name,
                domain=domain,
                source=CompanySourceKind.SANDBOX,
                description=f"{name} builds {rng.choice(_KINDS).lower()} products for mid-sized teams.",
                country=rng.choice(query.countries or _COUNTRIES),
                employee_range=query.employee_range or rng.choice(_SIZES),
                linkedin_url=f"https://www.linkedin.com/company/{domain.split('.')[0]}",
                similarity=round(rng.uniform(55, 99), 1) if query.seed_domains else None,
            )
        return Discovery(tuple(companies.values()), Usage.of(discolike_records=len(companies)))


class SandboxPersonSearch:
    def __init__(self, behaviour: SandboxBehaviour) -> None:
        self._b = behaviour

    async def search(self, project: Project, company: Company, limit: int) -> PeopleFound:
        await self._b.call("Prospeo")
        rng = self._b.rng("people", company.domain)
        titles = project.target_titles or ("Head of Sales", "VP Marketing", "CEO")
        people = []
        for i in range(min(limit, rng.randrange(0, limit + 2))):
            first, last = rng.choice(_FIRST), rng.choice(_LAST)
            slug = f"{first}-{last}-{company.domain.split('.')[0]}-{i}".lower()
            people.append(
                Person(
                    full_name=f"{first} {last}",
                    provider_person_id=hashlib.sha1(slug.encode()).hexdigest()[:24],
                    first_name=first,
                    last_name=last,
                    title=rng.choice(titles),
                    linkedin_url=f"https://www.linkedin.com/in/{slug}",
                )
            )
        return PeopleFound(tuple(people), Usage.of(prospeo_credits=1 if people else 0))


class SandboxEmailFinder:
    def __init__(self, behaviour: SandboxBehaviour) -> None:
        self._b = behaviour

    async def find_email(self, person: Person, company: Company) -> EmailFound:
        await self._b.call("Prospeo", scale=0.7)
        roll = self._b.rng("email", person.provider_person_id or person.full_name).random()
        if roll < 0.2:
            return EmailFound(None, EmailStatus.NOT_FOUND)
        local = (person.first_name or person.full_name).lower() + "." + (person.last_name or "").lower()
        local = unicodedata.normalize("NFKD", local).encode("ascii", "ignore").decode()  # müller -> muller
        status = EmailStatus.VERIFIED if roll < 0.85 else EmailStatus.UNVERIFIED
        return EmailFound(f"{local.strip('.')}@{company.domain}", status, Usage.of(prospeo_credits=1))


class SandboxLinkedinChecker:
    max_batch = 20

    def __init__(self, behaviour: SandboxBehaviour) -> None:
        self._b = behaviour

    async def check(self, targets: Sequence[LinkedinTarget]) -> LinkedinChecks:
        await self._b.call("Bright Data", scale=2.0)
        checks = []
        for t in targets:
            roll = self._b.rng("linkedin", t.url).random()
            if roll < 0.75:
                checks.append(LinkedinCheck(t.contact_id, True, f"current company is {t.company_name}"))
            elif roll < 0.88:
                checks.append(LinkedinCheck(t.contact_id, False, "now works at another company"))
            else:
                checks.append(LinkedinCheck(t.contact_id, False, "profile is gone (dead_page)"))
        return LinkedinChecks(tuple(checks), Usage.of(brightdata_records=len(targets)))
