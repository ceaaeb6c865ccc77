"""The connectors room's one error type.

Every failure a caller can cause or must handle is a `ConnectorError`: a stable `code`, the `field` it is
about (a config key such as `sink.collection`, a `where` path, `query`, `vector_name`), and a message that
names the field, the limit and the value. The server maps the code to an HTTP status once, at its edge.
"""

from __future__ import annotations


class ConnectorError(Exception):
    """A sink, its config, a schema, a filter or a query is wrong, or the database refused an operation.

    Codes: `invalid_config`, `invalid_schema`, `invalid_filter`, `invalid_query`, `unsupported` (the database
    cannot do what was asked), `collection_missing`, `schema_mismatch`, `backend_error`.
    """

    def __init__(self, message: str, *, field: str | None = None, code: str = "invalid_config") -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.code = code
