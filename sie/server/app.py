"""The FastAPI application: routers, error envelope, auth, limits, metrics and the lifecycle."""

from __future__ import annotations

import asyncio
import logging
import threading
from contextlib import asynccontextmanager, suppress

from fastapi import Depends, FastAPI

from sie import __version__
from sie.errors import SieError
from sie.metrics import Metrics
from sie.runtime.engine import Engine
from sie.server import admin, cohere, compat, errors, native, sie_sdk, tei
from sie.server.auth import ApiKeys, authorized
from sie.server.middleware import BodyLimit, RequestMetrics

log = logging.getLogger(__name__)
LAG_TICK_S = 0.01  # the ticker behind sie_event_loop_lag_seconds


def create_app(engine: Engine | None = None, *, keys: ApiKeys | None = None) -> FastAPI:
    """An app serving `engine` (created from the environment when None, and then owned and closed)."""
    owned = engine is None
    engine = engine or Engine()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        threading.Thread(target=_preload, args=(app,), name="sie-preload", daemon=True).start()
        ticker = asyncio.create_task(measure_loop_lag(engine.metrics), name="sie-loop-lag")
        yield
        ticker.cancel()
        with suppress(asyncio.CancelledError):
            await ticker
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

    # sie_sdk first: its routes match only requests from Superlinked's SDK (X-SIE-SDK-Version), on native's paths.
    for router in (sie_sdk.router, native.router, compat.router, cohere.router, tei.router):
        app.include_router(router, dependencies=[Depends(authorized)])
    app.include_router(admin.router)
    app.include_router(tei.public)
    app.add_middleware(RequestMetrics, metrics=engine.metrics)
    app.add_middleware(BodyLimit, max_bytes=engine.settings.max_body_bytes)
    return app


async def measure_loop_lag(metrics: Metrics, tick: float = LAG_TICK_S) -> None:
    """Sleep `tick` seconds, again and again, and record how much later than asked each wake-up came:
    anything that holds the event loop (a blocking call, a long computation) shows up here."""
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(tick)
        metrics.event_loop_lag.observe(max(0.0, loop.time() - start - tick))


def _preload(app: FastAPI) -> None:
    try:
        app.state.engine.preload()
    except SieError as e:
        log.error("preload failed: %s", e.message)
        app.state.preload_error = e
    finally:
        app.state.preloaded.set()
