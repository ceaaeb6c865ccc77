"""The sinks' schema, derived from the steps that make vectors and what their models make: vector names,
kinds, dimensions and distances are written once, in the steps (`vector_outputs`)."""

from __future__ import annotations

from typing import Any

from pipelines.errors import PipelineError
from pipelines.models import ModelDirectory, ModelInfo
from pipelines.spec import Pipeline, StepSpec


def sink_schema(pipeline: Pipeline, models: ModelDirectory) -> dict[str, Any]:
    vectors: dict[str, Any] = {}
    for step in pipeline.steps:
        if step.config.vector_outputs():
            info = encoder_info(step, models)
            vectors.update({name: out.spec for name, out in step.config.vector_outputs(info).items()})
    return {"vectors": vectors}


def encoder_info(step: StepSpec, models: ModelDirectory) -> ModelInfo | None:
    """The description of the model a step's vectors come from (None for a step that needs no model to
    make them); an unknown model is a 404 naming the step's key."""
    encoder = step.config.encoder()
    if encoder is None:
        return None
    key, name = encoder
    info = models.get(name)
    if info is None:
        where = f"steps[{step.index}].{step.name}.{key}"
        raise PipelineError(f"{where}: {models.unknown(name)}", field=where, code="model_not_found")
    return info
