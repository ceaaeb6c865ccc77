"""The one error envelope, mapped once at the server edge: {"error": {"code", "message", "field"}}."""

from __future__ import annotations

import logging
import math

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from sie.codec import encode_body, wants_msgpack
from sie.errors import InvalidInput, SieError

log = logging.getLogger(__name__)


class PayloadTooLarge(SieError):
    code, status = "payload_too_large", 413


class Unauthorized(SieError):
    code, status = "unauthorized", 401


class Forbidden(SieError):
    code, status = "forbidden", 403


class Draining(SieError):
    code, status = "draining", 503


def error_response(request: Request | None, err: SieError) -> Response:
    msgpack_out = request is not None and wants_msgpack(request.headers.get("accept"))
    headers = {}
    if err.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(err.retry_after)))
    if err.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    return Response(encode_body(err.to_dict(), msgpack_out), status_code=err.status, headers=headers,
                    media_type="application/msgpack" if msgpack_out else "application/json")


def field_path(loc: tuple, *, located: bool = False) -> str:
    """'items[3].text' from a pydantic location; `located` drops FastAPI's leading body/query/path."""
    out = ""
    for i, part in enumerate(loc):
        if located and i == 0 and part in ("body", "query", "path", "header"):
            continue
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def invalid(errors: list[dict], *, located: bool = False) -> InvalidInput:
    """pydantic errors → one 422 naming the first bad field, its problem and the value sent."""
    first = errors[0]
    path = field_path(tuple(first["loc"]), located=located)
    reason = "unknown field" if first["type"] == "extra_forbidden" else first["msg"]
    value = first.get("input")
    shown = "" if first["type"] in ("missing", "extra_forbidden") else f" (got {_short(value)})"
    more = f"; and {len(errors) - 1} more problem(s)" if len(errors) > 1 else ""
    return InvalidInput(f"{path}: {reason}{shown}{more}", field=path, status=422)


def _short(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def install(app: FastAPI) -> None:
    @app.exception_handler(SieError)
    async def _sie(request: Request, exc: SieError) -> Response:
        return error_response(request, exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        return error_response(request, invalid(list(exc.errors()), located=True))

    @app.exception_handler(ValidationError)
    async def _pydantic(request: Request, exc: ValidationError) -> Response:
        return error_response(request, invalid(exc.errors()))

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return error_response(request, SieError(f"{request.method} {request.url.path}: {exc.detail}",
                                                code=code, status=exc.status_code))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(request, SieError(f"internal error: {type(exc).__name__}; the server keeps "
                                                f"serving and the error is logged"))
