"""Job routes: the seed's `POST /api/tam/run`, create, read, list and cancel."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tam.containers import provide
from tam.domain.model import Job
from tam.entrypoints.api.http import by_method, container, parse_body, parse_query, reply
from tam.entrypoints.api.schemas import (
    CreatedJob,
    CreateJobRequest,
    EstimateOut,
    EstimateRequest,
    JobList,
    JobOut,
    JobQuery,
    RunRequest,
    RunResponse,
    job_type_of,
)


async def job_out(request: Request, job: Job) -> JobOut:
    """The job as the API shows it, with its usage priced in dollars."""
    prices = await provide(container(request).prices)
    return JobOut.model_validate(job).model_copy(update={"cost_usd": round(prices.cost(job.usage), 6)})


async def run(request: Request) -> JSONResponse:
    body = await parse_body(request, RunRequest)
    job_type = job_type_of(body.job_type)
    dispatch = await provide(container(request).dispatch_job)
    task_id = await dispatch.trigger(body.job_id, job_type, body.project_id)
    return reply(RunResponse(triggered=True, task_id=task_id))


async def create_job(request: Request) -> JSONResponse:
    body = await parse_body(request, CreateJobRequest)
    job_type = job_type_of(body.job_type)
    dispatch = await provide(container(request).dispatch_job)
    job, task_id = await dispatch.create(body.project_id, job_type, body.max_cost_usd)
    return reply(CreatedJob(job_id=job.id, task_id=task_id), status=201)


async def estimate_job(request: Request) -> JSONResponse:
    body = await parse_body(request, EstimateRequest)
    job_type = job_type_of(body.job_type)
    estimate = await provide(container(request).estimate_job)
    return reply(EstimateOut.model_validate(await estimate(body.project_id, job_type)))


async def get_job(request: Request) -> JSONResponse:
    jobs = await provide(container(request).jobs)
    return reply(await job_out(request, await jobs.get(request.path_params["job_id"])))


async def list_jobs(request: Request) -> JSONResponse:
    query = parse_query(request, JobQuery)
    jobs = await provide(container(request).jobs)
    found = await jobs.list(query.project_id)
    return reply(JobList(items=[await job_out(request, j) for j in found], total=len(found)))


async def cancel_job(request: Request) -> JSONResponse:
    c = container(request)
    jobs = await provide(c.jobs)
    clock = await provide(c.clock)
    job = await jobs.cancel(request.path_params["job_id"], clock.now())
    return reply(await job_out(request, job))


routes = [
    Route("/api/tam/run", run, methods=["POST"]),
    Route("/api/tam/jobs", by_method(post=create_job, get=list_jobs), methods=["GET", "POST"]),
    Route("/api/tam/jobs/estimate", estimate_job, methods=["POST"]),
    Route("/api/tam/jobs/{job_id:uuid}", get_job, methods=["GET"]),
    Route("/api/tam/jobs/{job_id:uuid}/cancel", cancel_job, methods=["POST"]),
]
