"""One CreateProject serves the API and the CLI: the same rules whichever way a project comes in."""

from __future__ import annotations

from typing import Annotated

import pytest
from pydantic import Field, TypeAdapter, ValidationError

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


def test_what_the_schema_calls_blank_is_what_is_refused() -> None:
    """The schema's pattern `\\S` (pydantic-core's regex: Unicode White_Space) and the trimming agree on
    every character Python calls a space: a name the schema accepts is created, one it refuses is 400."""
    schema = TypeAdapter(Annotated[str, Field(pattern=r"\S")])
    spaces = [chr(i) for i in range(0x3001) if chr(i).isspace()]
    assert "\x1f" in spaces  # Python's idea of a space is wider than Unicode's
    with make_client() as client:
        for space in spaces:
            try:
                schema.validate_python(space)
                accepted = True
            except ValidationError:
                accepted = False
            answer = client.post("/api/tam/projects", headers=AUTH, json={"name": space, "icp": "B2B SaaS"})
            assert answer.status_code == (201 if accepted else 400), (hex(ord(space)), answer.text)
            if accepted:
                assert answer.json()["name"] == space
