"""`sie validate` and `sie plan`: what a pipeline will do, checked before anything is written.

validate: the spec, plus (for the in-process engine) that every named model is in the catalog.
plan:     also each model's capability (encode outputs, score, extract), that the engine can load the
          tokenizers steps name, the sinks' schema against what each database can store (the sinks are
          opened, nothing is created or written), what each step makes, and for an ingest pipeline how
          many sources a run would process or skip according to the run store.
Everything about a step is read from what it declares (pipelines.steps.base): no step is named here.
Every problem carries `file:line:col key.path:` like the spec's own errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from connectors.errors import ConnectorError
from pipelines.errors import PipelineError, Problem, SpecError
from pipelines.models import ModelDirectory
from pipelines.spec import FilesSource, ObjectStoreSource, Pipeline
from pipelines.vectors import encoder_info, sink_schema


def check_models(p: Pipeline, models: ModelDirectory, *, capabilities: bool) -> list[Problem]:
    problems = []
    for step in p.steps:
        for key, name, need in step.config.models():
            path = ("steps", step.index, step.name, key)
            info = models.get(name)
            if info is None:
                problems.append(p.problem(path, models.unknown(name)))
                continue
            if not capabilities or need == "tokenizer":
                continue
            kinds = [out.kind for out in step.config.vector_outputs().values()] if need == "encode" else None
            why = info.can(need, kinds)
            if why:
                problems.append(p.problem(path, f"'{info.name}' {why}"))
            for field, message in step.config.model_problems(key, info):
                problems.append(p.problem(("steps", step.index, step.name, field), message))
    return problems


def check_tokenizers(p: Pipeline, tokenizers: Any) -> list[Problem]:
    """Each tokenizer a step declares (`models()`: chunking by tokens, trimming) loads here."""
    problems = []
    for step in p.steps:
        for key, name, need in step.config.models():
            if need != "tokenizer":
                continue
            try:
                tokenizers(name)
            except PipelineError as e:
                problems.append(p.problem(("steps", step.index, step.name, key), e.message))
    return problems


def check_sinks(p: Pipeline, models: ModelDirectory) -> tuple[list[Problem], list[dict[str, Any]]]:
    from connectors import open_sink

    problems: list[Problem] = []
    rows: list[dict[str, Any]] = []
    if p.kind == "ingest":
        try:
            schema = sink_schema(p, models)
        except PipelineError:
            return problems, rows  # the unknown model is already reported by check_models
        for spec in p.sinks:
            row = {"sink": spec.label, "key": spec.key, "schema": schema["vectors"], "status": "ok"}
            try:
                _check_schema(spec.raw, _schema(schema))
            except ConnectorError as e:
                row["status"] = e.message
                problems.append(p.problem(("sinks", spec.index), e.message))
            rows.append(row)
        return problems, rows
    made: dict[str, tuple[dict[str, Any], str]] = {}     # vector name -> (its spec, the step that makes it)
    for step in p.steps:
        try:
            info = encoder_info(step, models)
        except PipelineError:
            continue  # the unknown model is already reported by check_models
        made.update({name: (out.spec, step.name) for name, out in step.config.vector_outputs(info).items()})
    for step in p.steps:
        search = step.config.vector_search()
        if search is None:
            continue
        row = {"sink": f"{search.sink.get('type')}:{search.sink.get('collection')}", "status": "ok"}
        try:
            sink = open_sink(search.sink)
            try:
                stored = sink.ensure()  # reopens an existing collection; never creates one
                row["schema"] = stored.model_dump(mode="json")["vectors"]
                for name, (spec, maker) in made.items():
                    have = stored.vectors.get(name)
                    if have is None:
                        raise ConnectorError(f"the collection has no vector {name!r} (it has "
                                             f"{', '.join(stored.vectors)}); the query's {maker} step makes it")
                    if have.kind != spec["kind"] or (spec.get("dim") and have.dim != spec["dim"]):
                        raise ConnectorError(f"vector {name!r} is {have.kind} {have.dim} in the collection, but "
                                             f"the {maker} step makes {spec['kind']} {spec.get('dim')}")
            finally:
                sink.close()
        except ConnectorError as e:
            row["status"] = e.message
            problems.append(p.problem(("steps", step.index, step.name, search.sink_key), e.message))
        rows.append(row)
    return problems, rows


def reindex_outlook(p: Pipeline, models: ModelDirectory) -> dict[str, str]:
    """Per sink label: what a run does about the collection's schema ("model changed: reindex into ...").
    An embedded database that does not exist yet is not opened (opening would create it)."""
    from connectors import open_sink
    from connectors.base import physical_name
    from pipelines.targets import RECORDS_SWITCH, current_schema

    if p.kind != "ingest":
        return {}
    try:
        wanted = _schema(sink_schema(p, models))
    except PipelineError:
        return {}
    out: dict[str, str] = {}
    for spec in p.sinks:
        location = spec.raw.get("path") or spec.raw.get("uri")
        if isinstance(location, str) and "://" not in location and not Path(location).exists():
            out[spec.label] = "new collection"
            continue
        try:
            sink = open_sink(spec.raw)
        except ConnectorError:
            continue  # check_sinks reports it
        try:
            current = current_schema(sink)
            if current is None:
                out[spec.label] = "new collection"
            elif current == wanted:
                out[spec.label] = f"in place ({sink.physical})"
            else:
                how = "alias" if sink.aliases else "pointer"
                out[spec.label] = (f"model changed: reindex into {physical_name(sink.config.collection, wanted)}, "
                                   f"then switch {how}") + ("" if isinstance(p.source, FilesSource) else
                                                            f" {RECORDS_SWITCH}")
        except ConnectorError as e:
            out[spec.label] = e.message
        finally:
            sink.close()
    return out


def _check_schema(raw: dict[str, Any], schema: Any) -> None:
    """What the database can hold, checked without creating anything: an embedded database whose folder does
    not exist yet is not opened (opening would create it); its class's rules need no connection."""
    from connectors import open_sink
    from connectors.registry import load_config, sink_class

    location = raw.get("path") or raw.get("uri")
    if isinstance(location, str) and "://" not in location and not Path(location).exists():
        sink_class(load_config(raw).type).check_schema(schema)  # a class rule: no connection needed
        return
    sink = open_sink(raw)
    try:
        sink.check_schema(schema)
    finally:
        sink.close()


def _schema(schema: dict[str, Any]) -> Any:
    from connectors.records import Schema

    return Schema.parse(schema)


def source_outlook(p: Pipeline, store: Any, shard: Any) -> dict[str, Any]:
    """How many sources a run would process per sink (read and hashed, nothing written)."""
    from pipelines.sources import FileSource

    if isinstance(p.source, ObjectStoreSource):
        return _bucket_outlook(p, p.source, store, shard)
    if not isinstance(p.source, FilesSource):
        return {"type": "records", "note": "records are posted with each run request"}
    source = FileSource(p.source, shard)
    try:
        paths = source.paths()
    except PipelineError as e:
        return {"type": "files", "root": p.source.root, "error": e.message}
    docs = list(source.documents(paths))
    fingerprint = p.fingerprint()
    per_sink = {}
    for spec in p.sinks:
        states = store.sources(p.name, spec.key) if store is not None else {}
        todo = sum(1 for d in docs if (s := states.get(d.id)) is None or s.hash != d.hash
                   or s.fingerprint != fingerprint)
        gone = sum(1 for s in states if s not in {d.id for d in docs} and shard.owns(s) and not source.protects(s))
        per_sink[spec.label] = {"process": todo, "skip": len(docs) - todo, "vanished": gone}
    return {"type": "files", "root": p.source.root, "patterns": p.source.glob, "files": len(paths),
            "sources": len(docs), "refused": len(source.refused),
            "refusals": [{"path": r.path, "reason": r.reason} for r in source.refused[:20]], "per_sink": per_sink}


def _bucket_outlook(p: Pipeline, config: ObjectStoreSource, store: Any, shard: Any) -> dict[str, Any]:
    """What a run would download from a bucket: the listing only (nothing is downloaded to plan)."""
    from pipelines.objects import ObjectSource, unchanged

    source = ObjectSource(config, shard)
    try:
        entries = source.entries()
    except PipelineError as e:
        return {"type": config.type, "root": config.location, "error": e.message}
    per_sink = {}
    for spec in p.sinks:
        states = store.sources(p.name, spec.key) if store is not None else {}
        marks = store.objects(p.name, spec.key, f"{shard.index}/{shard.count}") if store is not None else {}
        kept = unchanged(entries, [(states, marks)], p.fingerprint(), shard.owns)
        per_sink[spec.label] = {"download": len(entries) - len(kept), "skip": len(kept)}
    return {"type": config.type, "root": config.location, "patterns": config.glob, "files": len(entries),
            "sources": len(entries), "refused": 0, "refusals": [], "per_sink": per_sink}


def raise_if(problems: list[Problem]) -> None:
    if problems:
        raise SpecError(problems)


def describe_steps(p: Pipeline) -> list[str]:
    """One line per step: its settings, then what it declares it makes (vectors and their kinds, metadata)."""
    out = []
    for s in p.steps:
        fields = s.config.model_dump(exclude_defaults=True, mode="json")
        shown = ", ".join(f"{k}={v}" for k, v in fields.items())
        vectors = ", ".join(f"{name} ({o.kind})" for name, o in s.config.vector_outputs().items())
        metadata = ", ".join(s.config.metadata_outputs())
        makes = (f" · vectors: {vectors}" if vectors else "") + (f" · metadata: {metadata}" if metadata else "")
        out.append(f"steps[{s.index}] {s.name}: {shown or '(defaults)'}{makes}")
    return out


def display_path(path: Path) -> str:
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)
