"""The Supabase Edge Function `tam-run-job`, run by Deno, forwarding jobs to a running `tam serve`."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import time
import uuid
from typing import Any

import httpx

from tests.edge.conftest import KEY, ROOT, TamServer

FUNCTION = ROOT / "supabase" / "functions" / "tam-run-job"
INVOKE = ROOT / "tests" / "edge" / "invoke.ts"


def invoke(deno: str, body: dict[str, Any], **env: str) -> dict[str, Any]:
    """Call the function's handler under Deno with only the given environment."""
    result = subprocess.run(
        [deno, "run", "--no-prompt", "--allow-net=127.0.0.1", "--allow-env", str(INVOKE), json.dumps(body)],
        env={"PATH": "/usr/bin:/bin", "NO_COLOR": "1", "DENO_NO_UPDATE_CHECK": "1", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    answer: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return answer


def frontend_inserts_job(server: TamServer, project_id: str, job_type: str, status: str = "pending") -> str:
    """The frontend writes the row itself with only a few columns; every other one has a default."""
    job_id = str(uuid.uuid4())
    with sqlite3.connect(server.db, timeout=10) as db:
        db.execute(
            "insert into tam_job_queue (id, project_id, job_type, status) values (?, ?, ?, ?)",
            (job_id, project_id, job_type, status),
        )
    return job_id


def new_project(server: TamServer) -> str:
    response = httpx.post(
        f"{server.url}/api/tam/projects",
        headers={"x-api-key": KEY},
        json={"name": "Edge", "icp": "B2B SaaS", "targetTitles": ["CTO"]},
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def wait_finished(server: TamServer, job_id: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        job: dict[str, Any] = httpx.get(f"{server.url}/api/tam/jobs/{job_id}", headers={"x-api-key": KEY}).json()
        if job["status"] in {"completed", "failed", "cancelled"}:
            return job
        assert time.monotonic() < deadline, job
        time.sleep(0.2)


def test_entrypoint_type_checks(deno: str) -> None:
    result = subprocess.run(
        [deno, "check", str(FUNCTION / "index.ts")], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr


def test_forwarded_jobs_run_to_completion(deno: str, tam_server: TamServer) -> None:
    project_id = new_project(tam_server)
    source = frontend_inserts_job(tam_server, project_id, "sourceCompanies")

    answer = invoke(
        deno,
        {"jobId": source, "jobType": "sourceCompanies", "projectId": project_id},
        TAM_API_URL=tam_server.url,
        SERVICE_API_KEY=KEY,
    )

    assert answer["status"] == 200, answer
    assert answer["body"]["triggered"] is True
    assert answer["body"]["taskId"]
    job = wait_finished(tam_server, source)
    assert job["status"] == "completed", job
    assert job["progress"] == 100
    assert job["taskId"] == answer["body"]["taskId"]

    # As in the seed: the caller may mark the job running first, and use GTM_SYSTEM_URL.
    qualify = frontend_inserts_job(tam_server, project_id, "qualify", status="running")
    answer = invoke(
        deno,
        {"jobId": qualify, "jobType": "qualify", "projectId": project_id},
        GTM_SYSTEM_URL=tam_server.url + "/",
        SERVICE_API_KEY=KEY,
    )
    assert answer["status"] == 200, answer
    job = wait_finished(tam_server, qualify)
    assert job["status"] == "completed", job
    assert job["itemsTotal"] == 20
    assert job["itemsDone"] + job["itemsFailed"] == 20


def test_wrong_key_is_refused_and_the_job_is_not_run(deno: str, tam_server: TamServer) -> None:
    project_id = new_project(tam_server)
    job_id = frontend_inserts_job(tam_server, project_id, "sourceCompanies")

    answer = invoke(
        deno,
        {"jobId": job_id, "jobType": "sourceCompanies", "projectId": project_id},
        TAM_API_URL=tam_server.url,
        SERVICE_API_KEY="not-the-key",
    )

    assert answer["status"] == 401, answer
    assert "not-the-key" not in json.dumps(answer)
    job = httpx.get(f"{tam_server.url}/api/tam/jobs/{job_id}", headers={"x-api-key": KEY}).json()
    assert job["status"] == "pending"
    assert job["taskId"] is None


def test_misconfiguration_and_bad_bodies_are_clear(deno: str, tam_server: TamServer) -> None:
    missing = invoke(deno, {"jobId": str(uuid.uuid4())}, SERVICE_API_KEY=KEY)
    assert missing["status"] == 500
    assert "TAM_API_URL" in missing["body"]["error"]

    no_job = invoke(deno, {"jobType": "qualify"}, TAM_API_URL=tam_server.url, SERVICE_API_KEY=KEY)
    assert no_job["status"] == 400
    assert "jobId" in no_job["body"]["error"]

    unknown = invoke(
        deno,
        {"jobId": str(uuid.uuid4()), "jobType": "qualify", "projectId": str(uuid.uuid4())},
        TAM_API_URL=tam_server.url,
        SERVICE_API_KEY=KEY,
    )
    assert unknown["status"] == 404, unknown
