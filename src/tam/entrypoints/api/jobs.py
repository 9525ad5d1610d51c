"""Job routes: the seed's `POST /api/tam/run`, create, read, list and cancel."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tam.domain.model import Job
from tam.entrypoints.api.http import by_method, parse_body, parse_query, reply, services
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


def job_out(request: Request, job: Job) -> JobOut:
    """The job as the API shows it, with its usage priced in dollars."""
    cost = services(request).prices.cost(job.usage)
    return JobOut.model_validate(job).model_copy(update={"cost_usd": round(cost, 6)})


async def run(request: Request) -> JSONResponse:
    body = await parse_body(request, RunRequest)
    job_type = job_type_of(body.job_type)
    task_id = await services(request).dispatch_job.trigger(body.job_id, job_type, body.project_id)
    return reply(RunResponse(triggered=True, task_id=task_id))


async def create_job(request: Request) -> JSONResponse:
    body = await parse_body(request, CreateJobRequest)
    job_type = job_type_of(body.job_type)
    job, task_id = await services(request).dispatch_job.create(body.project_id, job_type, body.max_cost_usd)
    return reply(CreatedJob(job_id=job.id, task_id=task_id), status=201)


async def estimate_job(request: Request) -> JSONResponse:
    body = await parse_body(request, EstimateRequest)
    job_type = job_type_of(body.job_type)
    estimate = await services(request).estimate_job(body.project_id, job_type)
    return reply(EstimateOut.model_validate(estimate))


async def get_job(request: Request) -> JSONResponse:
    return reply(job_out(request, await services(request).jobs.get(request.path_params["job_id"])))


async def list_jobs(request: Request) -> JSONResponse:
    query = parse_query(request, JobQuery)
    found = await services(request).jobs.list(query.project_id)
    return reply(JobList(items=[job_out(request, j) for j in found], total=len(found)))


async def cancel_job(request: Request) -> JSONResponse:
    s = services(request)
    return reply(job_out(request, await s.jobs.cancel(request.path_params["job_id"], s.clock.now())))


routes = [
    Route("/api/tam/run", run, methods=["POST"]),
    Route("/api/tam/jobs", by_method(post=create_job, get=list_jobs), methods=["GET", "POST"]),
    Route("/api/tam/jobs/estimate", estimate_job, methods=["POST"]),
    Route("/api/tam/jobs/{job_id:uuid}", get_job, methods=["GET"]),
    Route("/api/tam/jobs/{job_id:uuid}/cancel", cancel_job, methods=["POST"]),
]
