"""Real databases for the connector tests: every backend the sinks' own test modules declare (their
`BACKENDS`, see sink_backends.py): embedded engines in temp dirs, a real Chroma server started from the pip
package's `chroma` CLI (the `chroma_server` fixture of tests/conftest.py), and live servers where an environment
variable points at one."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from sink_backends import Backend, declared_backends

from connectors import Sink, open_sink

BACKENDS = declared_backends()


def unique_collection() -> str:
    return "T" + uuid.uuid4().hex[:12]


class SinkFactory:
    """make(schema, **options) -> an ensured sink on a fresh collection of this backend."""

    def __init__(self, backend: str, folder: Path, request: pytest.FixtureRequest) -> None:
        self.backend, self.folder, self.request = backend, folder, request
        self.declared: Backend = BACKENDS[backend]
        self.opened: list[Sink] = []

    def config(self, collection: str | None = None, **options: Any) -> dict[str, Any]:
        return {"type": self.declared.sink, "collection": collection or unique_collection(),
                **self.declared.options(self.folder, self.request), **options}

    def __call__(self, schema: Any = None, *, collection: str | None = None, **options: Any) -> Sink:
        sink = open_sink(self.config(collection, **options))
        self.opened.append(sink)
        if schema is not None:
            sink.ensure(schema)
        return sink

    def cleanup(self) -> None:
        for sink in self.opened:
            try:
                if self.declared.outlives_process and not sink.closed:
                    sink.drop()
            finally:
                sink.close()


@pytest.fixture(params=list(BACKENDS))
def make_sink(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Sink]]:
    factory = SinkFactory(request.param, tmp_path, request)
    factory.config()  # skips live backends that are not configured, before the test body runs
    yield factory
    factory.cleanup()
