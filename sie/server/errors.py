"""The server's edge: every error of every room answered once, in one envelope,
{"error": {"code", "message", "field"}}, with the HTTP status the one table below gives its code.

Errors carry codes, never statuses. A room whose errors are not `SieError`s (connectors) has its error
type handled here too by `map_errors`; its codes are rows of the same table.
"""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from sie.codec import encode_body, wants_msgpack
from sie.errors import InvalidInput, SieError, UnprocessableInput  # noqa: F401 (UnprocessableInput: the routes import it from here)

log = logging.getLogger(__name__)

#: code → HTTP status, for every code any room raises (tests/sie/server/test_error_table.py finds them all).
HTTP_STATUS: dict[str, int] = {
    # the engine (sie.errors)
    "invalid_input": 400, "unsupported_capability": 400, "model_not_found": 404, "model_busy": 409,
    "queue_full": 429, "internal": 500, "invalid_card": 500, "model_load_failed": 502, "model_loading": 503,
    "resource_exhausted": 503, "deadline_exceeded": 504,
    # the HTTP edge itself (and what a client of it reports)
    "empty": 400, "unauthorized": 401, "forbidden": 403, "not_found": 404, "method_not_allowed": 405,
    "payload_too_large": 413, "client_closed_request": 499, "draining": 503, "model_unavailable": 503,
    "unreachable": 503,
    # pipelines (pipelines.errors)
    "pipeline_error": 400, "invalid_pipeline": 400, "source_error": 400, "engine_unavailable": 400,
    "tokenizer_unavailable": 400, "pipeline_not_found": 404, "run_not_found": 404, "store_error": 503,
    "store_unavailable": 503,
    # connectors (connectors.errors)
    "invalid_config": 400, "invalid_schema": 400, "invalid_filter": 400, "invalid_query": 400, "unsupported": 400,
    "collection_missing": 404, "schema_mismatch": 409, "backend_error": 502,
}
#: Input that does not fit its route's shape keeps the code `invalid_input` and answers 422, as FastAPI's
#: own validation does and the compatibility routes' clients expect.
UNPROCESSABLE = 422


class PayloadTooLarge(SieError):
    code = "payload_too_large"


class Unauthorized(SieError):
    code = "unauthorized"


class Forbidden(SieError):
    code = "forbidden"


class Draining(SieError):
    code = "draining"


def http_status(err: Any) -> int:
    """The status an error answers with: its code's row (unknown codes are 500s)."""
    if isinstance(err, UnprocessableInput):
        return UNPROCESSABLE
    return HTTP_STATUS.get(getattr(err, "code", "internal"), 500)


def envelope(err: Any) -> dict:
    return {"error": {"code": err.code, "message": err.message, "field": err.field}}


def error_response(request: Request | None, err: Any, *, status: int | None = None) -> Response:
    """`err` (any room's error: code, message, field, maybe retry_after) as the envelope. `status` only for
    errors the HTTP framework raised, which already are statuses."""
    msgpack_out = request is not None and wants_msgpack(request.headers.get("accept"))
    status = status or http_status(err)
    headers = {}
    retry_after = getattr(err, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return Response(encode_body(envelope(err), msgpack_out), status_code=status, headers=headers,
                    media_type="application/msgpack" if msgpack_out else "application/json")


def field_path(loc: tuple, *, located: bool = False) -> str:
    """'items[3].text' from a pydantic location; `located` drops FastAPI's leading body/query/path."""
    out = ""
    for i, part in enumerate(loc):
        if located and i == 0 and part in ("body", "query", "path", "header"):
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def invalid(errors: list[dict], *, located: bool = False) -> UnprocessableInput:
    """pydantic errors → one 422 naming the first bad field, its problem and the value sent."""
    first = errors[0]
    path = field_path(tuple(first["loc"]), located=located)
    reason = "unknown field" if first["type"] == "extra_forbidden" else first["msg"]
    value = first.get("input")
    shown = "" if first["type"] in ("missing", "extra_forbidden") else f" (got {_short(value)})"
    more = f"; and {len(errors) - 1} more problem(s)" if len(errors) > 1 else ""
    return UnprocessableInput(f"{path}: {reason}{shown}{more}", field=path)


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


async def _coded(request: Request, exc: Exception) -> Response:
    return error_response(request, exc)


def map_errors(app: FastAPI, *error_types: type[Exception]) -> None:
    """Answer these error types (each with code, message and field) like `SieError`s, by their code."""
    for error_type in error_types:
        app.add_exception_handler(error_type, _coded)


def install(app: FastAPI) -> None:
    map_errors(app, SieError)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        return error_response(request, invalid(list(exc.errors()), located=True))

    @app.exception_handler(ValidationError)
    async def _pydantic(request: Request, exc: ValidationError) -> Response:
        return error_response(request, invalid(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(request, SieError(f"{request.method} {request.url.path}: {exc.detail}", code=code),
                              status=exc.status_code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(request, SieError(f"internal error: {type(exc).__name__}; the server keeps "
                                                f"serving and the error is logged"))
