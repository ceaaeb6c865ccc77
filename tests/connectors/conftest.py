"""Real databases for the connector tests: embedded engines in temp dirs, a real Chroma server started
from the pip package's `chroma` CLI (the `chroma_server` fixture of tests/conftest.py), and live Qdrant /
Weaviate servers when QDRANT_URL / WEAVIATE_URL point at one (none can run on these machines: no binary
in a reachable registry, no Docker engine)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from connectors import Sink, open_sink

LOCAL = ["lancedb", "chroma", "chroma_server", "qdrant_memory", "qdrant_path"]
LIVE = ["qdrant_live", "weaviate_live"]
BACKENDS = LOCAL + LIVE
#: Backends whose collections outlive the test process: drop them at teardown.
SERVERS = {"chroma_server", "qdrant_live", "weaviate_live"}


def unique_collection() -> str:
    return "T" + uuid.uuid4().hex[:12]


def backend_config(backend: str, folder: Path, collection: str, request: pytest.FixtureRequest) -> dict[str, Any]:
    if backend == "lancedb":
        return {"type": "lancedb", "collection": collection, "uri": str(folder / "lance")}
    if backend == "chroma":
        return {"type": "chroma", "collection": collection, "path": str(folder / "chroma")}
    if backend == "chroma_server":
        return {"type": "chroma", "collection": collection, "url": request.getfixturevalue("chroma_server")}
    if backend == "qdrant_memory":
        return {"type": "qdrant", "collection": collection}
    if backend == "qdrant_path":
        return {"type": "qdrant", "collection": collection, "path": str(folder / "qdrant")}
    if backend == "qdrant_live":
        if not os.environ.get("QDRANT_URL"):
            pytest.skip("QDRANT_URL is not set: no Qdrant server here (no binary or Docker on these machines)")
        config = {"type": "qdrant", "collection": collection, "url": os.environ["QDRANT_URL"]}
        if os.environ.get("QDRANT_API_KEY"):
            config["api_key"] = "${QDRANT_API_KEY}"
        return config
    if backend == "weaviate_live":
        if not os.environ.get("WEAVIATE_URL"):
            pytest.skip("WEAVIATE_URL is not set: no Weaviate server here (no binary or Docker on these machines)")
        config = {"type": "weaviate", "collection": collection, "url": os.environ["WEAVIATE_URL"]}
        if os.environ.get("WEAVIATE_GRPC_URL"):
            config["grpc_url"] = os.environ["WEAVIATE_GRPC_URL"]
        if os.environ.get("WEAVIATE_API_KEY"):
            config["api_key"] = "${WEAVIATE_API_KEY}"
        return config
    raise ValueError(backend)


class SinkFactory:
    """make(schema, **options) -> an ensured sink on a fresh collection of this backend."""

    def __init__(self, backend: str, folder: Path, request: pytest.FixtureRequest) -> None:
        self.backend, self.folder, self.request = backend, folder, request
        self.opened: list[Sink] = []

    def config(self, collection: str | None = None, **options: Any) -> dict[str, Any]:
        return {**backend_config(self.backend, self.folder, collection or unique_collection(), self.request),
                **options}

    def __call__(self, schema: Any = None, *, collection: str | None = None, **options: Any) -> Sink:
        sink = open_sink(self.config(collection, **options))
        self.opened.append(sink)
        if schema is not None:
            sink.ensure(schema)
        return sink

    def cleanup(self) -> None:
        for sink in self.opened:
            try:
                if self.backend in SERVERS and not sink.closed:
                    sink.drop()
            finally:
                sink.close()


@pytest.fixture(params=BACKENDS)
def make_sink(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Callable[..., Sink]]:
    factory = SinkFactory(request.param, tmp_path, request)
    factory.config()  # skips live backends that are not configured, before the test body runs
    yield factory
    factory.cleanup()
