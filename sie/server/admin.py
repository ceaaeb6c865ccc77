"""Operations: model list and state, load/unload, health, readiness, metrics and a status page."""

from __future__ import annotations

import asyncio
import html

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from sie import __version__
from sie.server.errors import Draining
from sie.server.http import name_model, respond

router = APIRouter()


def _admin(request: Request) -> None:
    request.app.state.keys.check_admin(request)


def _key(request: Request) -> None:
    request.app.state.keys.check(request)


@router.get("/v1/models", tags=["admin"], dependencies=[Depends(_key)])
async def models(request: Request):
    engine = request.app.state.engine
    return respond(request, {"object": "list", "data": engine.models_sync(), "memory": engine.memory()})


@router.get("/v1/models/{model:path}", tags=["admin"], dependencies=[Depends(_key)])
async def one_model(model: str, request: Request):
    return respond(request, request.app.state.engine.model_info(model))


@router.post("/v1/models/{model:path}/load", tags=["admin"], dependencies=[Depends(_admin)])
async def load(model: str, request: Request):
    name_model(request, model)
    engine = request.app.state.engine
    state = await asyncio.get_running_loop().run_in_executor(None, engine.load_model, model)
    return respond(request, state)


@router.post("/v1/models/{model:path}/unload", tags=["admin"], dependencies=[Depends(_admin)])
async def unload(model: str, request: Request):
    name_model(request, model)
    return respond(request, request.app.state.engine.unload_model(model))


@router.get("/v1/info", tags=["admin"], dependencies=[Depends(_key)])
async def info(request: Request):
    s = request.app.state.engine.settings
    return respond(request, {"version": __version__, "device": str(request.app.state.engine.device),
                             "limits": {"max_items": s.max_items, "max_chars": s.max_chars,
                                        "max_body_bytes": s.max_body_bytes, "queue_capacity": s.queue_capacity}})


@router.get("/healthz", tags=["ops"])
async def healthz():
    return {"status": "ok"}


@router.get("/readyz", tags=["ops"])
async def readyz(request: Request):
    state = request.app.state
    if state.draining:
        raise Draining("server: draining after SIGTERM; not taking new work", retry_after=5)
    if not state.preloaded.is_set():
        raise Draining("server: preloading models; not ready yet", retry_after=2)
    if state.preload_error is not None:
        raise state.preload_error
    return {"status": "ready"}


@router.get("/metrics", tags=["ops"])
async def metrics(request: Request):
    return Response(generate_latest(request.app.state.engine.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/", response_class=HTMLResponse, tags=["ops"], dependencies=[Depends(_key)])
async def status_page(request: Request):
    engine = request.app.state.engine
    usage = engine.memory()
    rows = "".join(
        f"<tr><td>{html.escape(s['name'])}</td><td class={s['state']}>{s['state']}</td>"
        f"<td>{_mib(s['device_bytes'])}</td><td>{_mib(s['host_bytes'])}</td><td>{s['inflight']}</td>"
        f"<td>{s['queue_depth']}</td><td>{s['precision'] or ''}</td>"
        f"<td>{html.escape(s['error'] or '')}</td></tr>"
        for s in engine.models_sync())
    mem = " · ".join(f"{tier}: {_mib(u['used'])} of {_mib(u['budget'])}" for tier, u in usage.items())
    page = f"""<!doctype html><html><head><meta charset=utf-8><title>sie</title><style>
body{{font:14px system-ui;margin:2em}} table{{border-collapse:collapse}} td,th{{padding:4px 10px;
border-bottom:1px solid #ddd;text-align:left}} .device{{color:#070}} .host{{color:#a60}} .failed{{color:#b00}}
</style></head><body><h1>sie {__version__}</h1><p>device {engine.device} · memory {mem}</p>
<table><tr><th>model</th><th>state</th><th>device</th><th>host</th><th>in flight</th><th>queued</th>
<th>precision</th><th>error</th></tr>{rows}</table></body></html>"""
    return HTMLResponse(page)


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB" if n else "–"
