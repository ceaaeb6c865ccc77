"""`score`: a relevance model scores each chunk against a fixed query or a query held in metadata; the
score lands in a metadata field and can drop chunks (`keep_if`) or keep the best `top_k` of each source.

    - score: {model: cross-encoder/ms-marco-MiniLM-L-6-v2, query: "billing problems", field: billing,
              keep_if: {gte: 0.3}, top_k: 5}
"""

from __future__ import annotations

from pydantic import Field, model_validator

from pipelines.paths import get_path, set_path
from pipelines.steps.base import BULK, Chunk, IngestStep, StepConfig
from pipelines.steps.extract import check_path


class Threshold(StepConfig):
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None

    @model_validator(mode="after")
    def _some(self) -> Threshold:
        if all(v is None for v in (self.gt, self.gte, self.lt, self.lte)):
            raise ValueError("give at least one of gt, gte, lt, lte")
        return self

    def holds(self, value: float | None) -> bool:
        if value is None:
            return False
        return ((self.gt is None or value > self.gt) and (self.gte is None or value >= self.gte)
                and (self.lt is None or value < self.lt) and (self.lte is None or value <= self.lte))


class ScoreConfig(StepConfig):
    model: str = Field(min_length=1)
    query: str | None = Field(None, min_length=1, description="A fixed query every chunk is scored against.")
    query_field: str | None = Field(None, description="Metadata path holding each chunk's query instead.")
    field: str = Field("score", description="Metadata path that receives the score.")
    keep_if: Threshold | None = Field(None, description="Chunks whose score fails this are dropped.")
    top_k: int | None = Field(None, gt=0, description="Keep only the best k chunks of each source.")
    instruction: str | None = None

    @model_validator(mode="after")
    def _one_query(self) -> ScoreConfig:
        if (self.query is None) == (self.query_field is None):
            raise ValueError("give exactly one of query (fixed text) or query_field (a metadata path)")
        check_path(self.field, "field")
        if self.query_field:
            check_path(self.query_field, "query_field")
        return self

    def models(self) -> list[tuple[str, str, str]]:
        return [("model", self.model, "score")]

    def metadata_outputs(self) -> list[str]:
        return [self.field]


class ScoreStep(IngestStep):
    name = "score"
    config_class = ScoreConfig
    uses_model = True

    def apply(self, chunks: list[Chunk]) -> list[Chunk]:
        c: ScoreConfig = self.config
        groups: dict[str, list[Chunk]] = {}
        for chunk in chunks:
            query = c.query if c.query is not None else get_path(chunk.metadata, c.query_field or "")
            if isinstance(query, str) and query.strip():
                groups.setdefault(query, []).append(chunk)
        options = {**BULK, **({"instruction": c.instruction} if c.instruction else {})}
        for query, members in groups.items():
            for scored in self.ctx.engine.score_sync(c.model, query, [m.text for m in members], **options):
                set_path(members[scored.index].metadata, c.field, float(scored.score))
        kept = [ch for ch in chunks if c.keep_if is None or c.keep_if.holds(get_path(ch.metadata, c.field))]
        if c.top_k is None:
            return kept
        by_source: dict[str, list[Chunk]] = {}
        for chunk in kept:
            by_source.setdefault(chunk.source_id, []).append(chunk)
        best = set()
        for members in by_source.values():
            ranked = sorted(members, key=lambda ch: (-(get_path(ch.metadata, c.field) or float("-inf")), ch.index))
            best.update(id(ch) for ch in ranked[: c.top_k])
        return [ch for ch in kept if id(ch) in best]
