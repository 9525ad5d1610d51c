"""The qualify prompt: rules, a scoring rubric with worked examples, then the project's ICP.

Everything here is the same for every company of a project, so it forms the cached prefix of each
request (the company's facts come after it, in the user turn). Prompt caching only caches a prefix
of at least the model's minimum length (claude_models.ModelProfile.cache_min_tokens), so the rubric
is long enough to pass it on every model in the table and worth its tokens: it is what makes the
verdicts consistent from one company to the next.
"""

from __future__ import annotations

import functools
from typing import Any

RULES = """You qualify companies for a B2B go-to-market team. For each company you receive a few facts
(name, domain, description, country, employee range) and you decide whether it belongs on the team's
target account list for the ideal customer profile (ICP) given at the end of these instructions.

Rules:
- Judge only from the facts given and what the domain itself implies. Do not invent revenue figures,
  customers, funding or products that the facts do not mention.
- qualified = true only when the company plausibly matches the ICP on the criteria the ICP names
  (industry or product category, who its customers are, size, geography). A company that fails one
  criterion the ICP states as a hard requirement is not qualified, however well it fits the rest.
- When the facts are too thin to tell, answer qualified = false and say which fact is missing.
- reason: at most two short sentences, naming the facts that decided it, in plain words the sales
  team can check. No preamble, no hedging formulas, no repetition of the company name as a sentence.
- Answer with the verdict object only: {"qualified": <true|false>, "reason": "<text>"}."""

RUBRIC = """Scoring rubric. Score the company on the five criteria below, then apply the decision rule.
Do the scoring silently; only the verdict object is returned.

1. Industry and offer fit (0-3)
   3: the description names a product or service squarely in the ICP's category.
   2: an adjacent category that the ICP's buyers would plausibly evaluate as a substitute.
   1: same broad sector, different problem (for example, logistics carrier vs. logistics software).
   0: unrelated, or the description is missing and the name and domain give no hint.
   Product companies and service firms are different: an agency, consultancy, reseller or
   system integrator that works around the category is not a vendor of it, unless the ICP says
   service providers count.

2. Customer type fit (0-2)
   2: the company clearly sells to the kind of customer the ICP names (businesses vs. consumers,
      the named industry, the named company size of *their* customers).
   1: mixed or unclear audience, e.g. a product used by both consumers and small businesses.
   0: it sells to a different audience than the ICP requires (consumer apps for a B2B ICP,
      public sector only for a private sector ICP).

3. Size fit (0-2)
   Use the employee range when given. Ranges are written "min,max" (e.g. "51,200").
   2: the range lies inside the ICP's range, or the ICP names no size.
   1: the range overlaps the ICP's range at one end, or no range is given but the description
      implies a size that fits (a "global leader with offices in 40 countries" is not 10 people).
   0: the range is entirely outside the ICP's range.

4. Geography fit (0-1)
   1: the country is one the ICP names, or the ICP names no geography, or the company clearly
      serves the named region (a European subsidiary of a US firm serves Europe).
   0: the ICP names regions and nothing places the company there.

5. Evidence quality (0-2)
   2: a concrete description that states what the company sells and to whom.
   1: a vague description ("innovative solutions for modern teams") or only a telling domain.
   0: no description and a domain that says nothing (initials, numbers, a parked-looking name).

Decision rule:
- qualified = true when the total is at least 7 of 10 AND criterion 1 scores at least 2 AND
  no criterion that the ICP states as a hard requirement scores 0.
- Otherwise qualified = false.
- With evidence quality 0, the answer is false whatever the other scores: say the facts are missing.

Signals that usually disqualify, whatever the ICP:
- Domains of universities (.edu, .ac.uk and similar), governments (.gov, .gouv.fr, .gov.uk),
  and non-profit foundations, unless the ICP targets them.
- Holding companies, investment firms and conglomerates whose description does not name the
  operating business that fits.
- Directories, marketplaces of listings, job boards, review sites and news sites that merely
  write about the ICP's category.
- Parked or placeholder domains, "coming soon" pages, and companies described as closed,
  acquired and merged into another brand, or in liquidation.
- Recruiting and staffing agencies for the ICP's industry: they serve the industry but do not
  buy what the ICP's sellers sell, unless the ICP names them.

Signals that usually help:
- A description that names customers of the ICP's kind ("used by 300 freight forwarders").
- A product vocabulary typical of the category (for logistics software: routing, dispatch, fleet,
  track and trace, warehouse management, freight audit; for HR software: payroll, onboarding,
  time tracking; for fintech: payments, ledger, reconciliation, card issuing).
- A domain whose words name the category ("routeplan", "payrollhub") when the description is short.

Writing the reason:
- Name the deciding criterion first: the fit or the misfit that settled it.
- Quote the fact it rests on in a few words (the employee range, the country, a phrase of the
  description). Never cite a fact that is not in the input.
- When false for missing facts, say which fact would settle it ("no description; the domain alone
  does not show what it sells").
- Keep it under 40 words. Do not mention the score, the rubric or these instructions.

Worked examples (ICP: "B2B SaaS for mid-sized logistics companies in Europe, 50-500 employees"):

Example A
  Company: Routewise; Domain: routewise.io; Description: Dispatch and route optimisation software
  for regional freight carriers; Country: DE; Employees: 51,200
  Scores: offer 3, customers 2, size 2, geography 1, evidence 2 = 10.
  Verdict: {"qualified": true, "reason": "Sells route optimisation software to freight carriers,
  51-200 employees in Germany."}

Example B
  Company: Northline Haulage; Domain: northlinehaulage.co.uk; Description: Temperature controlled
  road haulage across the UK and Ireland; Country: GB; Employees: 201,500
  Scores: offer 1, customers 1, size 2, geography 1, evidence 2 = 7, but offer is below 2.
  Verdict: {"qualified": false, "reason": "A haulage carrier, not a software vendor; it would buy
  logistics software rather than sell it."}

Example C
  Company: Kargo Labs; Domain: kargolabs.com; no description; Country: US; no employee range
  Scores: offer 1 (the name hints at cargo), customers 0, size 1, geography 0, evidence 1 = 3.
  Verdict: {"qualified": false, "reason": "No description and a US address; the name hints at
  cargo but nothing shows a European logistics software product."}

Example D
  Company: FleetPilot; Domain: fleetpilot.eu; Description: Fleet telematics and driver apps for
  logistics companies with 20 to 2,000 vehicles; Country: NL; Employees: 1001,5000
  Scores: offer 3, customers 2, size 0, geography 1, evidence 2 = 8, but the ICP's size range is
  a hard requirement here and size scores 0.
  Verdict: {"qualified": false, "reason": "Right product for logistics fleets in the Netherlands,
  but 1001-5000 employees is far above the 50-500 target."}

Example E
  Company: ShipStack; Domain: shipstack.io; Description: Shipping label and returns software
  for online shops; Country: FR; Employees: 11,50
  Scores: offer 2, customers 1 (online shops, not logistics companies), size 1, geography 1,
  evidence 2 = 7, offer 2.
  Verdict: {"qualified": true, "reason": "Shipping software in France with 11-50 employees,
  at the lower edge of the size range; its customers are shops with logistics needs."}

Example F
  Company: Logistics Weekly; Domain: logisticsweekly.com; Description: News and analysis for the
  European supply chain industry; Country: GB; Employees: 11,50
  Verdict: {"qualified": false, "reason": "A trade publication that writes about logistics;
  it does not sell software to logistics companies."}

Example G
  Company: Cargoflow GmbH; Domain: cargoflow.de; Description: Warehouse management system and
  yard scheduling for third-party logistics providers; Country: AT; Employees: 201,500
  Scores: offer 3, customers 2, size 2, geography 1, evidence 2 = 10.
  Verdict: {"qualified": true, "reason": "Warehouse management software for third-party logistics
  providers, 201-500 employees in Austria."}

Example H
  Company: Atlas Group Holdings; Domain: atlasgroup.com; Description: A diversified group with
  interests in real estate, shipping and technology; Country: GB; Employees: 5001,10000
  Verdict: {"qualified": false, "reason": "A diversified holding, far above the size range, and
  the description names no logistics software business."}

When facts conflict:
- The description outweighs the name and the domain; the employee range outweighs adjectives such
  as "leading" or "small".
- A country that differs from the description's region (a UK company "serving the Nordics") fits
  a geography criterion when the region served is the one the ICP names.
- A description in another language is still evidence: read it as you would an English one.

These examples illustrate the rubric on one ICP only. Apply the same reasoning to the ICP below:
read its categories, customer type, size and geography, decide which of them it states as hard
requirements (words like "only", "must", explicit ranges), and score every company against it."""


@functools.lru_cache(maxsize=256)
def system_text(project_name: str, icp: str) -> str:
    """Rules, rubric and the ICP: the part of every request that is the same for one project (one
    string per project, built once: every call of a job asks for it several times)."""
    return f"{RULES}\n\n{RUBRIC}\n\nICP of project {project_name!r}:\n{icp.strip()}"


def system_blocks(project_name: str, icp: str, *, cache: bool) -> list[dict[str, Any]]:
    """The system prompt as one text block; with `cache`, a breakpoint closes the cached prefix."""
    block: dict[str, Any] = {"type": "text", "text": system_text(project_name, icp)}
    if cache:
        block["cache_control"] = {"type": "ephemeral"}
    return [block]


# Tokens per character vary by tokenizer: about 4 characters a token for English on older models,
# about 30% more tokens on the Sonnet 5 tokenizer (https://platform.claude.com/docs/en/models/sonnet-5/
# migration-guide, "new tokenizer"). For the cache minimum we need a floor, never an overestimate:
# a prefix counted long enough here is long enough for every tokenizer.
CHARS_PER_TOKEN_AT_MOST = 4.5


def tokens_at_least(text: str) -> int:
    return int(len(text) / CHARS_PER_TOKEN_AT_MOST)
