"""`encode`: a model's outputs become named record vectors (dense / sparse / multivector).

    - encode: {model: all-MiniLM-L6-v2}                                  # one dense vector named "dense"
    - encode: {model: BAAI/bge-m3, outputs: {dense: dense, sparse: lexical}, distance: dot}

In an ingest pipeline texts are encoded as documents unless `mode: query`; in a query pipeline the
query is always encoded as a query. The sinks' schema (names, kinds, dimensions) follows from these
steps, so it is never written twice.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator

from pipelines.steps.base import BULK, Chunk, IngestStep, QueryState, QueryStep, StepConfig, VectorOutput

OutputKind = Literal["dense", "sparse", "multivector"]
VECTOR_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,63}$")  # the connectors' rule, checked here for positions
RESERVED_NAMES = frozenset({"id", "text", "metadata", "vector"})


class EncodeConfig(StepConfig):
    model: str = Field(min_length=1, description="Model name or alias (see `sie models`).")
    outputs: dict[OutputKind, str] = Field(default_factory=lambda: {"dense": "dense"},
                                           description="Output kind -> record vector name.")
    mode: Literal["document", "query"] = Field("document", description="Prompt role (ingest only).")
    dims: int | None = Field(None, gt=0, description="Matryoshka width of the dense output.")
    distance: Literal["cosine", "dot", "l2"] = Field("cosine", description="How the sink compares dense vectors.")
    instruction: str | None = Field(None, description="Instruction prefix for instruction-tuned encoders.")
    idf: bool = Field(False, description="Sparse output: ask the sink to weight terms by IDF (Qdrant).")

    @field_validator("outputs")
    @classmethod
    def _names(cls, outputs: dict[str, str]) -> dict[str, str]:
        if not outputs:
            raise ValueError("name at least one output, e.g. {dense: dense}")
        for kind, name in outputs.items():
            if not VECTOR_NAME.match(name) or name in RESERVED_NAMES:
                raise ValueError(f"vector name {name!r} (for {kind}): a letter, then letters, digits or '_' "
                                 f"(64 at most), and not one of {', '.join(sorted(RESERVED_NAMES))}")
        if len(set(outputs.values())) != len(outputs):
            raise ValueError("each output needs its own vector name")
        return outputs

    def models(self) -> list[tuple[str, str, str]]:
        return [("model", self.model, "encode")]

    def model_problems(self, key: str, info: Any) -> list[tuple[str, str]]:
        if self.dims and info.dense_dims and self.dims != info.dense_dims and self.dims not in info.matryoshka:
            widths = sorted({*info.matryoshka, info.dense_dims})
            return [("dims", f"'{info.name}' can make widths {widths}, not {self.dims}")]
        return []

    def vector_outputs(self, info: Any = None) -> dict[str, VectorOutput]:
        """The sink schema entries of this step, given the model's description (pipelines.models.ModelInfo);
        without one (validating the spec alone) the dimensions the model decides are None."""
        specs: dict[str, VectorOutput] = {}
        for kind, name in self.outputs.items():
            if kind == "dense":
                spec = {"kind": "dense", "dim": self.dims or getattr(info, "dense_dims", None),
                        "distance": self.distance}
            elif kind == "sparse":
                spec = {"kind": "sparse", "idf": self.idf, "distance": "dot"}
            else:
                spec = {"kind": "multivector", "dim": getattr(info, "multivector_dims", None),
                        "distance": "dot" if self.distance == "dot" else "cosine"}
            specs[name] = VectorOutput(spec, f"outputs.{kind}", "outputs")
        return specs


def engine_options(config: EncodeConfig, is_query: bool) -> dict[str, Any]:
    options: dict[str, Any] = {"is_query": is_query}
    if config.dims is not None:
        options["dims"] = config.dims
    if config.instruction is not None:
        options["instruction"] = config.instruction
    if set(config.outputs) != {"dense"}:
        # Only asked for when needed: an engine without sparse/multivector heads takes no such option.
        options["output_types"] = sorted(config.outputs)
    return options


def vectors_of(config: EncodeConfig, item: Any) -> dict[str, Any]:
    """An EncodedItem's outputs under their record vector names."""
    from connectors.records import SparseVector

    out: dict[str, Any] = {}
    for kind, name in config.outputs.items():
        value = getattr(item, kind, None)
        if value is None:
            raise ValueError(f"the engine returned no {kind} output for model '{config.model}'")
        if kind == "sparse":
            value = SparseVector(value.indices, value.values)
        out[name] = value
    return out


class EncodeStep(IngestStep):
    name = "encode"
    config_class = EncodeConfig
    uses_model = True

    def apply(self, chunks: list[Chunk]) -> list[Chunk]:
        if not chunks:
            return chunks
        c: EncodeConfig = self.config
        texts = [ch.text if ch.embed_text is None else ch.embed_text for ch in chunks]  # prefix_section
        items = self.ctx.engine.encode_sync(c.model, texts,
                                            **engine_options(c, c.mode == "query"), **BULK)
        for chunk, item in zip(chunks, items, strict=True):
            chunk.vectors.update(vectors_of(c, item))
        return chunks


class QueryEncodeStep(QueryStep):
    name = "encode"
    config_class = EncodeConfig
    uses_model = True

    async def run(self, state: QueryState, options: dict[str, Any]) -> None:
        c: EncodeConfig = self.config
        (item,) = await self.ctx.engine.encode(c.model, [state.text], **engine_options(c, True),
                                               **self.engine_options(state))
        state.vectors.update(vectors_of(c, item))
