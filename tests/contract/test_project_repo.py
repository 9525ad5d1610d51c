"""ProjectRepo contract, run against every storage adapter."""

from __future__ import annotations

from uuid import uuid4

import pytest

from tam.domain.model import NotFound, Project
from tests.contract.conftest import Stores


def a_project(**overrides: object) -> Project:
    fields: dict[str, object] = {
        "name": "Société Générale — 東京 ✓",
        "icp": "B2B SaaS selling to CFOs; 50-500 employees",
        "target_titles": ("CFO", "Head of Finance"),
        "target_seniorities": ("c_suite", "vp"),
        "countries": ("FR", "DE"),
        "employee_range": "51,500",
        "max_contacts_per_company": 2,
    }
    return Project(**{**fields, **overrides})  # type: ignore[arg-type]


async def test_a_project_round_trips_with_unicode_intact(store: Stores) -> None:
    project = a_project()
    added = await store.projects.add(project)
    got = await store.projects.get(project.id)
    assert got == added
    assert got.name == "Société Générale — 東京 ✓"
    assert got.icp == project.icp
    assert got.target_titles == ("CFO", "Head of Finance")
    assert got.target_seniorities == ("c_suite", "vp")
    assert got.countries == ("FR", "DE")
    assert got.employee_range == "51,500"
    assert got.max_contacts_per_company == 2
    assert got.created_at is not None


async def test_defaults_round_trip(store: Stores) -> None:
    project = Project(name="Bare", icp="")
    got = await store.projects.add(project)
    assert (got.target_titles, got.countries, got.employee_range, got.max_contacts_per_company) == ((), (), None, 3)


async def test_adding_the_same_project_twice_keeps_the_first(store: Stores) -> None:
    project = a_project()
    first = await store.projects.add(project)
    again = await store.projects.add(a_project(id=project.id, name="renamed"))
    assert again == first
    assert [p.id for p in await store.projects.list()].count(project.id) == 1


async def test_list_has_every_added_project_oldest_first(store: Stores) -> None:
    ids = [(await store.projects.add(a_project(name=f"p{i}"))).id for i in range(3)]
    listed = [p.id for p in await store.projects.list() if p.id in ids]
    assert listed == ids


async def test_a_missing_project_is_not_found(store: Stores) -> None:
    missing = uuid4()
    with pytest.raises(NotFound, match=str(missing)):
        await store.projects.get(missing)
