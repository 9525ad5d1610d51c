"""Bad input stays bad input on real PostgreSQL: a value the database refuses as data (a NUL byte, a
value too long for an index, a number out of range) answers 400 with one line, never 503 or 500; an
import lists such a row as rejected while the other rows go in."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from tests.api.helpers import AUTH, make_client, make_settings

LONG_DOMAIN = ".".join(["a" * 60] * 60) + ".com"  # 3,663 characters: past PostgreSQL's index row limit


@pytest.fixture
def client(migrated_database_url: str) -> Iterator[TestClient]:
    settings = make_settings(tam_store="postgres", database_url=migrated_database_url)
    with make_client(settings) as api:
        yield api


def one_line_400(response: object) -> str:
    assert response.status_code == 400, response.text  # type: ignore[attr-defined]
    error = response.json()["error"]  # type: ignore[attr-defined]
    assert isinstance(error, str) and error and "\n" not in error, error
    assert "Traceback" not in error and "postgresql://" not in error
    return error


def project(api: TestClient) -> str:
    created = api.post("/api/tam/projects", headers=AUTH, json={"name": "Data errors", "icp": "B2B"})
    assert created.status_code == 201, created.text
    return str(created.json()["id"])


@pytest.mark.parametrize(
    "body",
    [
        {"name": "Acme\x00Labs", "icp": "B2B"},
        {"name": "Acme", "icp": "B2B\x00 SaaS"},
        {"name": "Acme", "icp": "B2B", "targetTitles": ["CTO\x00"]},
    ],
    ids=["nul-in-name", "nul-in-icp", "nul-in-a-title"],
)
def test_a_nul_byte_in_a_project_is_a_400(client: TestClient, body: dict[str, object]) -> None:
    error = one_line_400(client.post("/api/tam/projects", headers=AUTH, json=body))
    assert "NUL" in error or "0x00" in error, error
    # nothing was stored, and the API still answers (no connection left broken)
    assert client.get("/api/tam/projects", headers=AUTH).status_code == 200


def test_an_import_lists_the_nul_row_and_stores_the_others(client: TestClient) -> None:
    project_id = project(client)
    rows = [
        {"name": "Good", "domain": "good.example"},
        {"name": "Bad\x00name", "domain": "bad.example"},
        {"name": "Also good", "domain": "also.example", "description": "fine"},
        {"name": "Bad description", "domain": "worse.example", "description": "a\x00b"},
    ]
    answer = client.post(f"/api/tam/projects/{project_id}/companies", headers=AUTH, json=rows)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["inserted"] == 2, body
    rejected = {r["domain"]: r["reason"] for r in body["rejected"]}
    assert set(rejected) == {"bad.example", "worse.example"}, body
    listed = client.get(f"/api/tam/projects/{project_id}/companies", headers=AUTH).json()
    assert sorted(c["domain"] for c in listed["items"]) == ["also.example", "good.example"]
