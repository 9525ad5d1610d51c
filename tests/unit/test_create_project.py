"""One CreateProject serves the API and the CLI: the same rules whichever way a project comes in."""

from __future__ import annotations

import pytest

from tam.adapters.memory import MemoryDatabase, MemoryProjectRepo
from tam.domain.model import InvalidInput, Project
from tam.domain.services.projects import CreateProject
from tests.api.helpers import AUTH, make_client


@pytest.mark.parametrize(("name", "icp"), [("   ", "B2B SaaS"), ("Acme", " \n "), ("", "")])
async def test_a_blank_name_or_icp_is_refused_and_nothing_is_stored(name: str, icp: str) -> None:
    repo = MemoryProjectRepo(MemoryDatabase())
    with pytest.raises(InvalidInput):
        await CreateProject(repo)(Project(name=name, icp=icp))
    assert await repo.list() == []


async def test_fields_are_trimmed_blank_targets_dropped_and_countries_upper_case() -> None:
    repo = MemoryProjectRepo(MemoryDatabase())
    project = Project(
        name="  Acme  ", icp=" SaaS ", target_titles=("COO", "  "), target_seniorities=(" vp ",), countries=("us", " ")
    )
    created = await CreateProject(repo)(project)
    assert (await repo.get(created.id)) == created
    assert (created.name, created.icp, created.target_titles, created.target_seniorities, created.countries) == (
        "Acme",
        "SaaS",
        ("COO",),
        ("vp",),
        ("US",),
    )


def test_the_api_refuses_a_blank_name_as_the_cli_does() -> None:
    with make_client() as client:
        answer = client.post("/api/tam/projects", headers=AUTH, json={"name": "   ", "icp": "B2B SaaS"})
        assert answer.status_code == 400, answer.text
        assert "name" in answer.json()["error"]
        assert client.get("/api/tam/projects", headers=AUTH).json()["total"] == 0
