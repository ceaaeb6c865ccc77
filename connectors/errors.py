"""The connectors room's one error type.

Every failure a caller can cause or must handle is a `ConnectorError`: a stable `code`, the `field` it is
about (a config key such as `sink.collection`, a `where` path, `query`, `vector_name`), and a message that
names the field, the limit and the value. The server maps it to HTTP once, at its edge.
"""

from __future__ import annotations

from typing import ClassVar


class ConnectorError(Exception):
    """A sink, its config, a schema, a filter or a query is wrong, or the database refused an operation.

    Codes: `invalid_config`, `invalid_schema`, `invalid_filter`, `invalid_query`, `unsupported` (the database
    cannot do what was asked), `collection_missing`, `schema_mismatch`, `backend_error`.
    """

    _STATUS: ClassVar[dict[str, int]] = {
        "invalid_config": 400, "invalid_schema": 400, "invalid_filter": 400, "invalid_query": 400,
        "unsupported": 400, "collection_missing": 404, "schema_mismatch": 409, "backend_error": 502}

    def __init__(self, message: str, *, field: str | None = None, code: str = "invalid_config") -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code
        self.status = self._STATUS.get(code, 500)

    def to_dict(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}
