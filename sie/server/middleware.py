"""Pure-ASGI middleware (no per-request task overhead): body-size limit and request metrics."""

from __future__ import annotations

import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sie.metrics import Metrics
from sie.server.errors import PayloadTooLarge, error_response


class BodyLimit:
    """413 before reading a body whose Content-Length (or streamed size) exceeds the limit."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            return await self._refuse(scope, receive, send, int(length))
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.max_bytes:
                    raise PayloadTooLarge(self._message(seen), field="body")
            return message

        await self.app(scope, limited, send)

    def _message(self, size: int) -> str:
        return f"body: {size} bytes exceeds the limit of {self.max_bytes} bytes (SIE_MAX_BODY_BYTES)"

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, size: int) -> None:
        response = error_response(None, PayloadTooLarge(self._message(size), field="body"))
        await response(scope, receive, send)


class RequestMetrics:
    """sie_requests_total{model, route, code} and sie_request_duration_seconds{route}."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        start = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None) or "unmatched"
            if path not in ("/metrics", "/healthz", "/readyz"):
                model = scope.get("state", {}).get("model", "")
                self.metrics.requests.labels(model, path, str(status)).inc()
                self.metrics.request_seconds.labels(path).observe(time.perf_counter() - start)
