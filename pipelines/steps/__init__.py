"""The step registries: a plain dict per pipeline kind, name -> (module, class), imported on first use.

Ingest: chunk, extract, encode, score, filter, map. Query: extract_filters, encode, search, rerank, trim.
Every registered step has a config class (pydantic, unknown keys refused) and a test entry.
"""

from __future__ import annotations

import importlib
from typing import Any

INGEST_STEPS: dict[str, tuple[str, str]] = {
    "chunk": ("pipelines.steps.chunk", "ChunkStep"),
    "extract": ("pipelines.steps.extract", "ExtractStep"),
    "encode": ("pipelines.steps.encode", "EncodeStep"),
    "score": ("pipelines.steps.score", "ScoreStep"),
    "filter": ("pipelines.steps.fields", "FilterStep"),
    "map": ("pipelines.steps.fields", "MapStep"),
}
QUERY_STEPS: dict[str, tuple[str, str]] = {
    "extract_filters": ("pipelines.steps.extract_filters", "ExtractFiltersStep"),
    "encode": ("pipelines.steps.encode", "QueryEncodeStep"),
    "search": ("pipelines.steps.search", "SearchStep"),
    "rerank": ("pipelines.steps.rerank", "RerankStep"),
    "trim": ("pipelines.steps.trim", "TrimStep"),
}
REGISTRIES = {"ingest": INGEST_STEPS, "query": QUERY_STEPS}


def step_class(kind: str, name: str) -> Any:
    module, cls = REGISTRIES[kind][name]
    return getattr(importlib.import_module(module), cls)
