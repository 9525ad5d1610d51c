"""/openapi.json, generated from the same pydantic models that validate requests."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, TypeAdapter
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from tam.entrypoints.api import schemas as s

REF = "#/components/schemas/{model}"

_REQUESTS: tuple[type[BaseModel], ...] = (
    s.RunRequest,
    s.CreateJobRequest,
    s.EstimateRequest,
    s.CreateProjectRequest,
    s.CompanyIn,
    s.JobQuery,
    s.Page,
    s.CompanyQuery,
    s.ContactQuery,
)
_RESPONSES: tuple[type[BaseModel], ...] = (
    s.RunResponse,
    s.CreatedJob,
    s.EstimateOut,
    s.JobOut,
    s.JobList,
    s.ProjectOut,
    s.ProjectList,
    s.ProjectDetail,
    s.ImportOut,
    s.CompanyPageOut,
    s.ContactPageOut,
    s.Health,
    s.Readiness,
    s.Error,
)

_ERRORS = {
    "400": "Malformed JSON, or a missing or invalid field (the message names it)",
    "401": "Missing or wrong x-api-key",
    "404": "Unknown job or project",
    "405": "Method not allowed",
    "409": "The request contradicts the job's state, or a job of that type is already active for the project"
    " (then `jobId` names it)",
    "413": "Body larger than 1 MiB",
    "422": "Unknown jobType",
    "503": "A dependency (database or broker) is unreachable",
}


def _ref(model: type[BaseModel]) -> dict[str, str]:
    return {"$ref": REF.format(model=model.__name__)}


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"application/json": {"schema": schema}}


def _operation(
    summary: str,
    ok: tuple[str, type[BaseModel]],
    errors: tuple[str, ...],
    body: dict[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    secured: bool = True,
) -> dict[str, Any]:
    responses: dict[str, Any] = {ok[0]: {"description": "OK", "content": _json(_ref(ok[1]))}}
    for code in (*errors, "405") if secured else ("405",):
        responses[code] = {"description": _ERRORS[code], "content": _json(_ref(s.Error))}
    if secured:
        responses["401"] = {"description": _ERRORS["401"], "content": _json(_ref(s.Error))}
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if not secured:
        op["security"] = []
    if body is not None:
        op["requestBody"] = {"required": True, "content": _json(body)}
    if parameters:
        op["parameters"] = parameters
    return op


def _metrics_operation() -> dict[str, Any]:
    op = _operation("Prometheus metrics: jobs, items, provider calls", ("200", s.Error), ())
    op["responses"]["200"] = {
        "description": "Prometheus text exposition format",
        "content": {"text/plain": {"schema": {"type": "string"}}},
    }
    return op


def _path_param(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}


def _query_params(model: type[BaseModel], components: dict[str, Any]) -> list[dict[str, Any]]:
    properties = components[model.__name__]["properties"]
    return [{"name": name, "in": "query", "required": False, "schema": schema} for name, schema in properties.items()]


def build_openapi() -> dict[str, Any]:
    modes: list[tuple[type[BaseModel], JsonSchemaMode]] = [(m, "validation") for m in _REQUESTS]
    modes += [(m, "serialization") for m in _RESPONSES]
    _, top = models_json_schema(modes, ref_template=REF)
    components: dict[str, Any] = top.get("$defs", {})
    company_rows = TypeAdapter(list[s.CompanyIn]).json_schema(ref_template=REF)
    company_rows.pop("$defs", None)
    job, project = _path_param("jobId"), _path_param("projectId")
    paths: dict[str, Any] = {
        "/api/tam/run": {
            "post": _operation(
                "Dispatch a job the caller created (the seed's contract); repeated calls return the same taskId",
                ("200", s.RunResponse),
                ("400", "404", "409", "413", "422", "503"),
                body=_ref(s.RunRequest),
            )
        },
        "/api/tam/jobs": {
            "post": _operation(
                "Create a job and dispatch it (409 with the active job's id while one of that type is pending or"
                " running for the project)",
                ("201", s.CreatedJob),
                ("400", "404", "409", "413", "422", "503"),
                body=_ref(s.CreateJobRequest),
            ),
            "get": _operation(
                "List jobs, newest first",
                ("200", s.JobList),
                ("400",),
                parameters=_query_params(s.JobQuery, components),
            ),
        },
        "/api/tam/jobs/estimate": {
            "post": _operation(
                "What a job would cost now (items, calls, tokens, credits, dollars, mode); nothing is called or stored",
                ("200", s.EstimateOut),
                ("400", "404", "413", "422"),
                body=_ref(s.EstimateRequest),
            ),
        },
        "/api/tam/jobs/{jobId}": {
            "get": _operation("Read a job", ("200", s.JobOut), ("404",), parameters=[job]),
        },
        "/api/tam/jobs/{jobId}/cancel": {
            "post": _operation(
                "Cancel a pending or running job; a finished job is returned unchanged",
                ("200", s.JobOut),
                ("404",),
                parameters=[job],
            ),
        },
        "/api/tam/projects": {
            "post": _operation(
                "Create a project",
                ("201", s.ProjectOut),
                ("400", "413"),
                body=_ref(s.CreateProjectRequest),
            ),
            "get": _operation("List projects, oldest first", ("200", s.ProjectList), ()),
        },
        "/api/tam/projects/{projectId}": {
            "get": _operation(
                "Read a project with counts of companies and contacts",
                ("200", s.ProjectDetail),
                ("404",),
                parameters=[project],
            ),
        },
        "/api/tam/projects/{projectId}/companies": {
            "post": _operation(
                "Import companies; domains are normalised, unusable ones rejected and listed",
                ("200", s.ImportOut),
                ("400", "404", "413"),
                body=company_rows,
                parameters=[project],
            ),
            "get": _operation(
                "List a project's companies",
                ("200", s.CompanyPageOut),
                ("400", "404"),
                parameters=[project, *_query_params(s.CompanyQuery, components)],
            ),
        },
        "/api/tam/projects/{projectId}/contacts": {
            "get": _operation(
                "List a project's contacts",
                ("200", s.ContactPageOut),
                ("400", "404"),
                parameters=[project, *_query_params(s.ContactQuery, components)],
            ),
        },
        "/healthz": {"get": _operation("Liveness", ("200", s.Health), (), secured=False)},
        "/metrics": {"get": _metrics_operation()},
        "/readyz": {"get": _operation("Database and broker reachable", ("200", s.Readiness), ("503",))},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "tam",
            "version": "1",
            "description": "Build TAM lists: create projects, import companies, dispatch and follow jobs.",
        },
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"}},
        },
        "security": [{"apiKey": []}],
    }
