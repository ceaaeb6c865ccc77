"""`extract_filters`: entities found in the query become `where` filters for the search.

    - extract_filters: {model: urchade/gliner_small-v2.1, labels: [person, company],
                        fields: {person: entities.person, company: company}}
      # "what did Ada say about Acme?" -> where {"$and": [{"entities.person": {"$in": ["Ada"]}},
      #                                                   {"company": {"$in": ["Acme"]}}]}

Labels without a field map to `entities.<label>` (where the ingest `extract` step puts them). A list-valued
field matches when any element does on sinks that filter lists (Qdrant); scalar fields work everywhere.
When no entity is found the search is not filtered.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from pipelines.steps.base import QueryState, QueryStep, StepConfig
from pipelines.steps.extract import check_key, check_path


class ExtractFiltersConfig(StepConfig):
    model: str = Field(min_length=1)
    labels: list[str] = Field(min_length=1, max_length=64)
    threshold: float | None = Field(None, ge=0, le=1)
    fields: dict[str, str] = Field(default_factory=dict, description="Label -> metadata path it filters.")
    combine: Literal["all", "any"] = Field("all", description="Every label's filter must hold, or any.")

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: list[str]) -> list[str]:
        for label in labels:
            check_key(label, "label")
        return labels

    @model_validator(mode="after")
    def _fields(self) -> ExtractFiltersConfig:
        for label, path in self.fields.items():
            if label not in self.labels:
                raise ValueError(f"fields names label {label!r}, which is not in labels {self.labels}")
            check_path(path, "field path")
        return self

    def models(self) -> list[tuple[str, str, str]]:
        return [("model", self.model, "extract")]


class ExtractFiltersStep(QueryStep):
    name = "extract_filters"
    config_class = ExtractFiltersConfig

    async def run(self, state: QueryState, options: dict[str, Any]) -> None:
        c: ExtractFiltersConfig = self.config
        extra = {"threshold": c.threshold} if c.threshold is not None else {}
        (result,) = await self.ctx.engine.extract(c.model, [state.text], labels=list(c.labels), **extra)
        found: dict[str, list[str]] = {}
        for entity in result.entities:
            if entity.label in c.labels:
                texts = found.setdefault(entity.label, [])
                if entity.text not in texts:
                    texts.append(entity.text)
        parts = [{c.fields.get(label, f"entities.{label}"): {"$in": texts}} for label, texts in found.items()]
        state.notes["entities"] = found
        if parts:
            state.where = parts[0] if len(parts) == 1 else {"$and" if c.combine == "all" else "$or": parts}
