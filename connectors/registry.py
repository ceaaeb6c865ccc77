"""`type:` -> sink class. A plain dict of module and class names, imported on first use, so a database
client is only imported when a config asks for that database."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from connectors.base import Sink
from connectors.config import SinkConfig, parse_config
from connectors.errors import ConnectorError

SINKS: dict[str, tuple[str, str]] = {
    "chroma": ("connectors.chroma", "ChromaSink"),
    "lancedb": ("connectors.lancedb", "LanceDBSink"),
    "qdrant": ("connectors.qdrant", "QdrantSink"),
    "weaviate": ("connectors.weaviate", "WeaviateSink"),
}


def sink_class(type_name: object) -> type[Sink]:
    if not isinstance(type_name, str) or type_name not in SINKS:
        raise ConnectorError(f"sink.type: unknown sink type {type_name!r}; valid types: {', '.join(sorted(SINKS))}",
                             field="sink.type")
    module, name = SINKS[type_name]
    return getattr(importlib.import_module(module), name)


def load_config(raw: Mapping[str, Any], env: Mapping[str, str] | None = None) -> SinkConfig:
    """The validated config of the sink type `raw["type"]` names."""
    if not isinstance(raw, Mapping):
        raise ConnectorError(f"sink: expected a mapping of options, got {type(raw).__name__}", field="sink")
    return parse_config(raw, sink_class(raw.get("type")).config_class, env)


def open_sink(config: Mapping[str, Any] | SinkConfig, env: Mapping[str, str] | None = None) -> Sink:
    """A connected sink for a YAML dict (or an already validated config). Call `ensure(schema)` next."""
    if not isinstance(config, SinkConfig):
        config = load_config(config, env)
    return sink_class(config.type)(config)
