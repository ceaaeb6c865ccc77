"""What each sink can hold and search, checked while a pipeline file is validated, so `sie validate`,
`sie plan` and `sie run` refuse up front what a run is certain to be refused at `ensure()` or search time.

The rules are the connectors' own, read from the sink classes (`check_schema`, `searches`, `hybrid`): this
module only applies them to the vectors the steps declare they make (`vector_outputs`) and search with
(`vector_search`). Dimensions come from the models, which the spec alone does not know, so they are left
out (no connector rule reads them; `sie plan` checks the full schema with the models' dimensions).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from connectors.errors import ConnectorError
from connectors.records import Schema, VectorSpec
from connectors.registry import SINKS, sink_class
from pipelines.steps import vector_makers

Fail = Callable[[tuple, str], None]


def check_ingest_sinks(pipeline: Any, fail: Fail) -> None:
    """Each sink must be able to store every vector the steps make."""
    made = _made(pipeline.steps)
    if not made:
        return
    schema = Schema.model_construct(vectors={name: spec for name, (spec, _) in made.items()})
    for sink in pipeline.sinks:
        if sink.raw.get("type") not in SINKS:
            continue  # a ${VAR} type: checked when the connector opens it
        cls = sink_class(sink.raw["type"])
        try:
            cls.check_schema(schema)
        except ConnectorError as e:
            name = e.field.removeprefix("schema.vectors.") if e.field and e.field.startswith("schema.vectors.") \
                else None
            reason = e.message.split(": ", 1)[1] if e.field and e.message.startswith(e.field) else e.message
            if name in made:
                fail(("sinks", sink.index, "vectors", name), f"{reason} (vector {name!r} is {made[name][0].kind}, "
                                                             f"made by {made[name][1]})")
            else:
                fail(("sinks", sink.index), reason)


def check_search_sink(pipeline: Any, step: Any, fail: Fail) -> None:
    """The vectors a step searches with must be made before it, and its sink must be able to search them (and
    fuse several)."""
    search = step.config.vector_search()
    made = _made([s for s in pipeline.steps if s.index < step.index])
    names = list(search.names or made)
    path = ("steps", step.index, step.name)
    for name in names:
        if name not in made:
            fail((*path, search.key), f"{name!r} is not made by {vector_makers(pipeline.kind, article=True)} "
                                      f"before it (they make {', '.join(made) or 'nothing'})")
            return
    if search.sink.get("type") not in SINKS:
        return
    cls = sink_class(search.sink["type"])
    if len(names) > 1 and not cls.hybrid:
        fail((*path, search.key) if search.names else path,
             f"searches {', '.join(names)} at once, and {cls.type} cannot fuse several searches (hybrid: "
             f"{', '.join(t for t in SINKS if sink_class(t).hybrid)}); name one with `{search.key}:`")
    for name in names:
        kind = made[name][0].kind
        if kind not in cls.searches:
            fail((*path, search.sink_key, "type"), f"{cls.type} cannot search {kind} vectors ({name!r}, made by "
                                                   f"{made[name][1]}); it searches {', '.join(sorted(cls.searches))}")


def _made(steps: list[Any]) -> dict[str, tuple[VectorSpec, str]]:
    """{vector name: (its spec without model dimensions, the key that makes it)}."""
    made = {}
    for step in steps:
        for name, output in step.config.vector_outputs().items():
            made[name] = (VectorSpec.model_construct(**output.spec), f"steps[{step.index}].{step.name}.{output.key}")
    return made
