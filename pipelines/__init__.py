"""pipelines: declarative YAML ingest and query pipelines over the sie engine and the connectors' sinks.

Start at `pipelines.spec` (the YAML, validated with positions), `pipelines.steps` (the registered steps),
`pipelines.runner` + `pipelines.writer` (the ingest run and its crash-safety order), `pipelines.store`
(the run store), `pipelines.query` (query pipelines). Edges: `pipelines.plugin` (how `sie` finds
this room: an entry point), `pipelines.cli` (the `sie` commands), `pipelines.rest` (mounted by
`sie serve --pipelines DIR`), `pipelines.mcp_server` (`sie mcp`).

This room talks to models only through the Engine protocol and to databases only through connectors.
"""

from pipelines.errors import PipelineError, Problem, SpecError
from pipelines.spec import Pipeline, load_pipeline, parse_pipeline

__all__ = ["Pipeline", "PipelineError", "Problem", "SpecError", "load_pipeline", "parse_pipeline"]
