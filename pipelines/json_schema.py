"""The JSON Schema of pipeline files (`sie schema`), generated from the same pydantic models that
validate them, so editors, docs and the validator never disagree."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from pipelines.spec import EngineConfig, FilesSource, IngestHeader, ObjectStoreSource, QueryHeader, RecordsSource
from pipelines.steps import REGISTRIES, step_class


def _schema(model: type[BaseModel], defs: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/$defs/{model}")
    defs.update(schema.pop("$defs", {}))
    return schema


def _steps(kind: str, defs: dict[str, Any]) -> dict[str, Any]:
    options = []
    for name in REGISTRIES[kind]:
        config = step_class(kind, name).config_class
        options.append({"type": "object", "additionalProperties": False, "required": [name],
                        "properties": {name: _schema(config, defs)}})
    return {"type": "array", "minItems": 1, "items": {"oneOf": options}}


def _sinks(defs: dict[str, Any]) -> dict[str, Any]:
    """One config per sink type the connectors register (a new connector appears here by its registry line)."""
    from connectors.registry import SINKS, sink_class

    return {"oneOf": [_schema(sink_class(t).config_class, defs) for t in SINKS]}


def pipeline_schema(kind: str = "all") -> dict[str, Any]:
    defs: dict[str, Any] = {}
    engine = {"anyOf": [{"const": "local"}, {"type": "string", "format": "uri"}, _schema(EngineConfig, defs)]}
    out: dict[str, Any] = {}
    if kind in ("all", "ingest"):
        ingest = _schema(IngestHeader, defs)
        ingest["properties"].update(engine=engine, steps=_steps("ingest", defs),
                                    source={"oneOf": [_schema(c, defs) for c in (FilesSource, ObjectStoreSource,
                                                                                 RecordsSource)]},
                                    sinks={"type": "array", "minItems": 1, "items": _sinks(defs)})
        out["ingest"] = ingest
    if kind in ("all", "query"):
        query = _schema(QueryHeader, defs)
        query["properties"].update(engine=engine, steps=_steps("query", defs))
        out["query"] = query
    body = out[kind] if kind != "all" else {"oneOf": [out["ingest"], out["query"]]}
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": f"sie pipeline ({kind})",
            **body, "$defs": defs}
