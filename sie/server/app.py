"""The FastAPI application: routers, error envelope, auth, limits, metrics and the lifecycle."""

from __future__ import annotations

import logging
import threading
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI, Request

from sie import __version__
from sie.errors import SieError
from sie.runtime.engine import Engine
from sie.server import admin, cohere, compat, errors, native, tei
from sie.server.auth import ApiKeys
from sie.server.middleware import BodyLimit, RequestMetrics

log = logging.getLogger(__name__)


def create_app(engine: Engine | None = None, *, keys: ApiKeys | None = None) -> FastAPI:
    """An app serving `engine` (created from the environment when None, and then owned and closed)."""
    owned = engine is None
    engine = engine or Engine()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        threading.Thread(target=_preload, args=(app,), name="sie-preload", daemon=True).start()
        yield
        if owned:
            engine.close()

    app = FastAPI(title="sie", version=__version__, lifespan=lifespan,
                  description="encode / score / extract over many small models on one device")
    app.state.engine = engine
    app.state.keys = keys or ApiKeys.from_env()
    app.state.draining = False
    app.state.preloaded = threading.Event()
    app.state.preload_error = None
    errors.install(app)

    async def authorized(request: Request) -> None:  # async: a sync dependency costs a threadpool hop
        request.app.state.keys.check(request)
        if request.app.state.draining:
            raise errors.Draining("server: draining after SIGTERM; send new work to another replica",
                                  retry_after=5)

    for router in (native.router, compat.router, cohere.router, tei.router):
        app.include_router(router, dependencies=[Depends(authorized)])
    app.include_router(admin.router)
    app.include_router(tei.public)
    app.add_middleware(RequestMetrics, metrics=engine.metrics)
    app.add_middleware(BodyLimit, max_bytes=engine.settings.max_body_bytes)
    return app


def _preload(app: FastAPI) -> None:
    try:
        app.state.engine.preload()
    except SieError as e:
        log.error("preload failed: %s", e.message)
        app.state.preload_error = e
    finally:
        app.state.preloaded.set()
