"""Helpers shared by the routes: decode a body into a request model, answer in the client's format,
and stop work for a client that hung up."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError

from sie.call_options import MAX_TIMEOUT_MS
from sie.codec import TIMEOUT_HEADER, decode_body, encode_body, wants_msgpack
from sie.errors import InvalidInput, SieError
from sie.server.errors import invalid

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")


class ClientGone(SieError):
    code = "client_closed_request"


def timeout_ms(request: Request) -> float | None:
    """The request's time budget from the X-SIE-Timeout-Ms header (a header, like gRPC's grpc-timeout, so every
    route and any proxy can carry it and a retrying client re-sends only what is left of it)."""
    raw = request.headers.get(TIMEOUT_HEADER)
    if raw is None:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value <= MAX_TIMEOUT_MS:  # NaN fails too
        raise InvalidInput(f"{TIMEOUT_HEADER}: expected milliseconds in (0, {MAX_TIMEOUT_MS}], got {raw[:40]!r}",
                           field=TIMEOUT_HEADER)
    return value


def name_model(request: Request, name: str) -> None:
    """Label this request's metrics with the canonical model name (unknown names share one label,
    so arbitrary client input cannot blow up metric cardinality)."""
    catalog = request.app.state.engine.catalog
    request.state.model = catalog.get(name).name if name in catalog else "unknown"


async def parse(request: Request, model: type[M], *, empty_is_defaults: bool = False) -> M:
    """The body (JSON or msgpack) as `model`; an empty body is refused, or is `model`'s defaults when
    `empty_is_defaults` (a POST that needs no options)."""
    body = await request.body()
    if not body and not empty_is_defaults:
        raise InvalidInput("body: empty request body; send a JSON or msgpack object", field="body")
    try:
        data = decode_body(body, request.headers.get("content-type")) if body else {}
    except ValueError as e:
        raise InvalidInput(f"body: {e}", field="body") from None
    try:
        return model.model_validate(data)
    except ValidationError as e:
        raise invalid(e.errors()) from None


def respond(request: Request, payload: Any, status: int = 200) -> Response:
    msgpack_out = wants_msgpack(request.headers.get("accept"))
    start = time.perf_counter()
    body = encode_body(payload, msgpack_out)
    engine = request.app.state.engine
    model = getattr(request.state, "model", None)
    if model:
        engine.metrics.phase_seconds.labels(model, "serialize").observe(time.perf_counter() - start)
    return Response(body, status_code=status, media_type="application/msgpack" if msgpack_out else "application/json")


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """Run `work`; if the client disconnects first, cancel it (its queued sequences are dropped)."""
    task = asyncio.ensure_future(work)

    async def client_left() -> None:
        while True:
            message = await request.receive()
            if message["type"] == "http.disconnect":
                return

    watcher = asyncio.ensure_future(client_left())
    try:
        done, _ = await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
    except asyncio.CancelledError:
        task.cancel()
        raise
    finally:
        watcher.cancel()
    if task in done:
        return task.result()
    task.cancel()
    raise ClientGone("client: disconnected before the answer was ready; its work was dropped")


class EnvelopedRoute(APIRoute):
    """A route whose errors (its own, its auth dependency's, body validation's) are answered by `envelope`:
    the error shape of the API it is compatible with (TEI's, Superlinked's SDK's), not sie's."""

    envelope: ClassVar[Callable[[Request, SieError], Response]]

    def get_route_handler(self) -> Callable[[Request], Awaitable[Response]]:
        handler, envelope = super().get_route_handler(), type(self).envelope

        async def route(request: Request) -> Response:
            try:
                return await handler(request)
            except SieError as e:
                return envelope(request, e)
            except RequestValidationError as e:
                return envelope(request, invalid(list(e.errors()), located=True))

        return route
