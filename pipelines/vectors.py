"""The sinks' schema, derived from the encode steps and what their models make: vector names, kinds,
dimensions and distances are written once, in the steps."""

from __future__ import annotations

from typing import Any

from pipelines.errors import PipelineError
from pipelines.models import ModelDirectory
from pipelines.spec import Pipeline


def sink_schema(pipeline: Pipeline, models: ModelDirectory) -> dict[str, Any]:
    vectors: dict[str, Any] = {}
    for step in pipeline.steps_named("encode"):
        info = models.get(step.config.model)
        if info is None:
            raise PipelineError(f"steps[{step.index}].encode.model: {models.unknown(step.config.model)}",
                                field=f"steps[{step.index}].encode.model", code="model_not_found")
        vectors.update(step.config.vector_specs(info))
    return {"vectors": vectors}
