"""Bad input stays bad input: a row the database could not store is rejected and listed, the rest go in."""

from __future__ import annotations

from tam.adapters.memory import MemoryCompanyRepo, MemoryDatabase, MemoryProjectRepo
from tam.domain.model import Project
from tam.domain.services.projects import CompanyRow, ImportCompanies


async def test_a_nul_byte_rejects_its_row_and_the_others_go_in() -> None:
    db = MemoryDatabase()
    project = await MemoryProjectRepo(db).add(Project(name="p", icp="icp"))
    rows = [
        CompanyRow(name="Good", domain="good.example"),
        CompanyRow(name="Bad\x00name", domain="bad.example"),
        CompanyRow(name="Also good", domain="https://www.also.example/x"),
    ]
    result = await ImportCompanies(MemoryCompanyRepo(db))(project.id, rows)
    assert (result.inserted, result.skipped) == (2, 0)
    assert result.rejected == (("bad.example", "name contains a NUL character"),)


async def test_a_domain_longer_than_dns_allows_is_rejected_before_the_store() -> None:
    db = MemoryDatabase()
    project = await MemoryProjectRepo(db).add(Project(name="p", icp="icp"))
    longest = ".".join(["a" * 63] * 3) + "." + "b" * 61  # 253 characters: DNS's limit
    rows = [CompanyRow(name="Max", domain=longest), CompanyRow(name="Over", domain="x." + longest)]
    result = await ImportCompanies(MemoryCompanyRepo(db))(project.id, rows)
    assert result.inserted == 1
    ((domain, reason),) = result.rejected
    assert domain == "x." + longest and "longer than 253 characters" in reason and len(reason) < 120
