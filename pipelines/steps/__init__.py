"""The step registries: a plain dict per pipeline kind, name -> (module, class), imported on first use.

Ingest: chunk, extract, encode, score, filter, map. Query: extract_filters, encode, search, rerank, trim.
Every registered step has a config class (pydantic, unknown keys refused) and a test entry. A new step is
its module (config + class, with its declarations: pipelines.steps.base, .rules), its test, and one line here.
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


def step_classes(kind: str) -> list[Any]:
    return [step_class(kind, name) for name in REGISTRIES[kind]]


def vector_makers(kind: str, *, article: bool = False, with_model: bool = False) -> str:
    """The registered steps of `kind` that make record vectors (`with_model`: with a model, which a tokenizer
    can be taken from), as messages name them: "encode step", or with `article` "an encode step"."""
    from pipelines.steps.base import declares_vectors

    names = [cls.name for cls in step_classes(kind)
             if declares_vectors(cls.config_class) and (cls.uses_model or not with_model)]
    phrase = f"{' or '.join(names)} step" if names else "step that makes vectors"
    return f"{'an' if phrase[0] in 'aeiou' else 'a'} {phrase}" if article else phrase
