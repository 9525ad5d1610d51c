"""The seed's contract: POST /api/tam/run for a job the frontend created, and every error status."""

from __future__ import annotations

import asyncio
import dataclasses
from uuid import UUID, uuid4

import pytest

from tam.domain.model import BrokerUnavailable, Job, JobStatus, JobType
from tests.api.helpers import AUTH, RecordingDispatcher, make_client, make_settings, new_project, run, services


def seed_job(client, project_id: str, job_type: JobType = JobType.QUALIFY, **fields) -> Job:
    """Insert a job row the way the frontend's edge function does: already `running`."""
    job = Job(project_id=UUID(project_id), job_type=job_type, status=JobStatus.RUNNING, **fields)
    return run(client, lambda: services(client).jobs.add(job))


def test_run_accepts_a_running_job_and_a_repeat_returns_the_same_task_without_a_second_enqueue() -> None:
    settings, recorder = make_settings(), RecordingDispatcher()
    with make_client(settings, recorder) as client:
        project_id = new_project(client)
        job = seed_job(client, project_id)
        body = {"jobId": str(job.id), "jobType": "qualify", "projectId": project_id}

        first = client.post("/api/tam/run", headers=AUTH, json=body)
        again = client.post("/api/tam/run", headers=AUTH, json=body)
        stored = run(client, lambda: services(client).jobs.get(job.id))

    assert first.status_code == 200
    assert first.json() == {"triggered": True, "taskId": first.json()["taskId"]}
    assert again.status_code == 200
    assert again.json()["taskId"] == first.json()["taskId"]
    assert [j.id for j in recorder.dispatched] == [job.id]
    assert stored.task_id == first.json()["taskId"]


def test_concurrent_triggers_enqueue_once() -> None:
    settings, recorder = make_settings(), RecordingDispatcher()
    with make_client(settings, recorder) as client:
        project_id = new_project(client)
        job = seed_job(client, project_id)

        async def race() -> set[str]:
            dispatch = services(client).dispatch_job
            calls = (dispatch.trigger(job.id, JobType.QUALIFY, UUID(project_id)) for _ in range(20))
            return set(await asyncio.gather(*calls))

        assert len(client.portal.call(race)) == 1
    assert len(recorder.dispatched) == 1


@pytest.mark.parametrize("spelling", ["find_contacts", "findContacts"])
def test_run_accepts_both_spellings_of_the_job_type(spelling: str) -> None:
    settings, recorder = make_settings(), RecordingDispatcher()
    with make_client(settings, recorder) as client:
        project_id = new_project(client)
        job = seed_job(client, project_id, JobType.FIND_CONTACTS)
        response = client.post(
            "/api/tam/run", headers=AUTH, json={"jobId": str(job.id), "jobType": spelling, "projectId": project_id}
        )
    assert response.status_code == 200


def test_run_runs_the_job_in_process_without_redis() -> None:
    settings = make_settings()
    with make_client(settings) as client:
        project_id = new_project(client)
        client.post(
            f"/api/tam/projects/{project_id}/companies",
            headers=AUTH,
            json=[{"name": f"Co {i}", "domain": f"co{i}.example"} for i in range(12)],
        )
        job = seed_job(client, project_id)
        response = client.post(
            "/api/tam/run", headers=AUTH, json={"jobId": str(job.id), "jobType": "qualify", "projectId": project_id}
        )
        assert response.status_code == 200
        client.portal.call(services(client).dispatcher.join)
        done = client.get(f"/api/tam/jobs/{job.id}", headers=AUTH).json()

    assert done["status"] == "completed"
    assert done["progress"] == 100
    assert done["itemsDone"] + done["itemsFailed"] == 12
    assert done["taskId"] == response.json()["taskId"]


def _error(response, status: int, *words: str) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert "\n" not in body["error"]
    assert "Traceback" not in body["error"]
    for word in words:
        assert word in body["error"]


def test_every_error_status_of_the_run_route() -> None:
    settings, recorder = make_settings(), RecordingDispatcher()
    with make_client(settings, recorder) as client:
        project_id = new_project(client)
        other_project = new_project(client, name="Other")
        job = seed_job(client, project_id)
        finished = seed_job(client, project_id)
        jobs = services(client).jobs
        run(client, lambda: jobs.finish(finished.id, JobStatus.COMPLETED, "done", None, finished.created_at))
        ok = {"jobId": str(job.id), "jobType": "qualify", "projectId": project_id}

        def post(**kwargs):
            return client.post("/api/tam/run", **kwargs)

        _error(post(json=ok), 401, "x-api-key")
        _error(post(json=ok, headers={"x-api-key": "wrong"}), 401, "x-api-key")
        _error(post(content=b'{"jobId": ', headers=AUTH), 400, "malformed JSON")
        _error(post(content=b"", headers=AUTH), 400, "body")
        _error(post(json={"jobId": str(job.id), "jobType": "qualify"}, headers=AUTH), 400, "projectId")
        _error(post(json={**ok, "jobId": "not-a-uuid"}, headers=AUTH), 400, "jobId")
        _error(post(json={**ok, "jobId": 7}, headers=AUTH), 400, "jobId")
        _error(post(json={**ok, "extra": 1}, headers=AUTH), 400, "extra")
        _error(post(json=[ok], headers=AUTH), 400)
        _error(post(json={**ok, "jobType": "bake"}, headers=AUTH), 422, "bake")
        _error(post(json={**ok, "jobId": str(uuid4())}, headers=AUTH), 404, "not found")
        _error(post(json={**ok, "projectId": other_project}, headers=AUTH), 409, "another project")
        _error(post(json={**ok, "jobType": "checkLinkedin"}, headers=AUTH), 409, "qualify")
        _error(post(json={**ok, "jobId": str(finished.id)}, headers=AUTH), 409, "completed")
        _error(post(content=b"{" + b" " * (1024 * 1024) + b"}", headers=AUTH), 413, "1 MiB")

        def chunks():
            for _ in range(17):
                yield b" " * 65536

        _error(post(content=chunks(), headers=AUTH), 413, "1 MiB")

    assert recorder.dispatched == []


def test_broker_outage_answers_503_leaves_the_job_as_it_was_and_the_retry_enqueues_it() -> None:
    class FlakyBroker(RecordingDispatcher):
        down = True

        async def dispatch(self, job: Job) -> str:
            if self.down:
                raise BrokerUnavailable("the job broker (REDIS_URL) is unreachable: ConnectionError")
            return await super().dispatch(job)

    settings = make_settings()
    broker = FlakyBroker()
    with make_client(settings, broker) as client:
        project_id = new_project(client)
        job = seed_job(client, project_id)
        body = {"jobId": str(job.id), "jobType": "qualify", "projectId": project_id}
        response = client.post("/api/tam/run", headers=AUTH, json=body)
        _error(response, 503, "REDIS_URL")
        during = client.get(f"/api/tam/jobs/{job.id}", headers=AUTH).json()
        broker.down = False
        after = client.post("/api/tam/run", headers=AUTH, json=body)
    assert (during["status"], during["taskId"], during["error"]) == ("running", None, None)  # as the frontend set it
    assert after.status_code == 200, after.text
    assert [j.id for j in broker.dispatched] == [job.id]
    assert broker.dispatched[0].task_id == after.json()["taskId"]


def test_an_unexpected_error_answers_500_without_details() -> None:
    class Broken:
        async def get(self, job_id):
            raise RuntimeError("password=hunter2 at line 12")

    with make_client() as client:
        client.app.state.services = dataclasses.replace(services(client), jobs=Broken())
        response = client.get(f"/api/tam/jobs/{uuid4()}", headers=AUTH)
    _error(response, 500)
    assert "hunter2" not in response.text
