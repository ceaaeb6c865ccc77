"""Query pipelines as Model Context Protocol tools (`sie mcp --pipelines DIR`, stdio), built on the
official `mcp` SDK: an agent framework calls e.g. `docs_search(query, max_tokens=2000)` and gets the
trimmed chunks with scores and the tokens saved, without glue code.

One tool per query pipeline, named after it ('-' becomes '_'), described by its `description`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from pipelines.errors import PipelineError
from pipelines.library import PipelineLibrary
from pipelines.manager import RunManager

log = logging.getLogger(__name__)


def tool_name(pipeline: str) -> str:
    return pipeline.replace("-", "_")


def build_server(library: PipelineLibrary, manager: RunManager) -> Any:
    from mcp.server.mcpserver import MCPServer

    server = MCPServer(name="sie-pipelines", instructions="Search document collections indexed by sie. Each tool "
                       "returns the most relevant chunks within a token budget, with scores and token counts.")
    for p in library.pipelines.values():
        if p.kind == "query":
            server.add_tool(_tool(manager, p), name=tool_name(p.name),
                            description=p.description or f"Search with the '{p.name}' pipeline: the best chunks "
                                                         "for `query`, packed into `max_tokens`.")
    if not any(p.kind == "query" for p in library.pipelines.values()):
        raise PipelineError(f"pipelines: no query pipeline in {library.folder} (kind: query); nothing to offer",
                            field="pipelines")
    return server


def _tool(manager: RunManager, p: Any) -> Any:
    async def search(query: str, max_tokens: int | None = None, limit: int | None = None) -> dict[str, Any]:
        answer = await manager.query_runner(p).query(query, max_tokens=max_tokens, limit=limit)
        return {"results": [{"text": r["text"], "score": r["score"], "tokens": r["tokens"],
                             "source": r["metadata"].get("source"), "metadata": r["metadata"]}
                            for r in answer["results"]],
                "tokens": answer["tokens"], "rerank": answer["rerank"]}

    search.__doc__ = p.description or f"Search with the '{p.name}' pipeline."
    return search


def serve_stdio(folder: str | Path) -> None:
    library = PipelineLibrary.load(folder)
    for file, problems in library.broken.items():
        log.warning("skipping %s: %s", file, problems)
    # The in-process engine is created only if a pipeline uses it, and only when first queried.
    manager = RunManager(library, _LazyEngine())
    server = build_server(library, manager)
    try:
        server.run("stdio")
    finally:
        manager.close()


class _LazyEngine:
    """The in-process Engine, built on first use (a folder of remote-engine pipelines never loads torch)."""

    def __init__(self) -> None:
        self._engine: Any = None

    def _get(self) -> Any:
        if self._engine is None:
            from sie import Engine

            self._engine = Engine()
        return self._engine

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)
