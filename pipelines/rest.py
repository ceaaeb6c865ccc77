"""The pipelines' REST API, mounted into `sie serve --pipelines DIR` with the server's auth and error
envelope:

    GET  /v1/pipelines                    what the folder holds (and which files are broken, and why)
    POST /v1/pipelines/{name}/runs        202 + run id; body {records?, sync_deletions?, retry_dlq?, full?};
                                          `Idempotency-Key` header: the same key answers with the same run
    GET  /v1/runs/{id}                    state, counters per stage and sink, errors
    POST /v1/pipelines/{name}/query       {query, max_tokens?, limit?, where?, deadline_ms?} -> chunks, scores,
                                          tokens (504 deadline_exceeded naming the step that ran out)
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, Header, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field

from connectors.errors import ConnectorError
from pipelines.errors import PipelineError
from pipelines.library import PipelineLibrary
from pipelines.manager import RunManager
from sie.server.auth import authorized
from sie.server.errors import map_errors
from sie.server.http import parse, respond

router = APIRouter(tags=["pipelines"])
MAX_IDEMPOTENCY_KEY = 255


class RunRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    records: list[Any] | None = Field(None, description="Documents for a `records` source: {id, text, metadata}.")
    sync_deletions: bool | None = None
    retry_dlq: bool = False
    full: bool = Field(False, description="Reprocess every source for every sink; delete vanished sources' records. "
                                          "With records: the posted records are all of them (the others are "
                                          "deleted), which lets a pending reindex switch.")


class QueryRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: str = Field(min_length=1)
    max_tokens: int | None = Field(None, gt=0)
    limit: int | None = Field(None, gt=0)
    where: dict[str, Any] | None = None
    deadline_ms: int | None = Field(None, gt=0, description="This query's end-to-end budget (default: the "
                                                             "pipeline's deadline_ms).")


def _manager(request: Request) -> RunManager:
    return request.app.state.pipelines


def _describe(p: Any) -> dict[str, Any]:
    out = {"name": p.name, "kind": p.kind, "version": p.version, "description": p.description,
           "steps": [s.name for s in p.steps], "engine": p.engine.url or "in-process"}
    if p.kind == "ingest":
        out["source"] = p.source.type
        out["sinks"] = [s.label for s in p.sinks]
    return out


@router.get("/v1/pipelines")
async def list_pipelines(request: Request) -> Response:
    library = _manager(request).library
    broken = [{"file": f, "problems": msg.splitlines()} for f, msg in library.broken.items()]
    return respond(request, {"object": "list", "data": [_describe(p) for p in library.pipelines.values()],
                             "broken": broken})


@router.post("/v1/pipelines/{name}/runs", status_code=202)
async def start_run(name: str, request: Request,
                    idempotency_key: str | None = Header(None, alias="Idempotency-Key")) -> Response:
    manager = _manager(request)
    p = manager.library.get(name)
    if p.kind != "ingest":
        raise PipelineError(f"pipeline {name!r} is a query pipeline: POST /v1/pipelines/{name}/query", field="name")
    if idempotency_key is not None and not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY:
        raise PipelineError(f"Idempotency-Key: 1..{MAX_IDEMPOTENCY_KEY} characters", field="Idempotency-Key")
    body = await parse(request, RunRequest, empty_is_defaults=True)
    run, created = manager.start(p, records=body.records, sync_deletions=body.sync_deletions,
                                 retry_dlq=body.retry_dlq, full=body.full, idempotency_key=idempotency_key)
    payload = {**manager.get_run(run.id).to_dict(), "links": {"self": f"/v1/runs/{run.id}"},
               "created": created}
    response = respond(request, payload, status=202)
    if not created:
        response.headers["Idempotent-Replayed"] = "true"
    return response


@router.get("/v1/runs/{run_id}")
async def get_run(run_id: str, request: Request) -> Response:
    return respond(request, _manager(request).get_run(run_id).to_dict())


@router.post("/v1/pipelines/{name}/query")
async def run_query(name: str, request: Request) -> Response:
    manager = _manager(request)
    p = manager.library.get(name)
    if p.kind != "query":
        raise PipelineError(f"pipeline {name!r} is an ingest pipeline: POST /v1/pipelines/{name}/runs", field="name")
    body = await parse(request, QueryRequest, empty_is_defaults=True)
    runner = manager.query_runner(p)
    answer = await runner.query(body.query, max_tokens=body.max_tokens, limit=body.limit, where=body.where,
                                deadline_ms=body.deadline_ms)
    return respond(request, answer)


def mount(app: FastAPI, folder: str | Path, *, store: str | None = None) -> RunManager:
    """Serve the pipelines in `folder` from `app` (a `sie.server.create_app` app), behind its API keys and
    error envelope (a sink's errors answer by their code, like the engine's)."""
    library = PipelineLibrary.load(folder)
    manager = RunManager(library, getattr(app.state, "engine", None), store or os.environ.get("SIE_RUN_STORE"))
    app.state.pipelines = manager
    map_errors(app, ConnectorError)
    app.include_router(router, dependencies=[Depends(authorized)])
    served = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[Any]:
        # Runs are stopped (and marked interrupted) at shutdown, while their engine is still open: after
        # SIGTERM uvicorn re-raises the signal once it has shut down, so an atexit hook would never run.
        async with served(app) as state:
            try:
                yield state
            finally:
                await asyncio.to_thread(manager.close)

    app.router.lifespan_context = lifespan
    return manager
