"""`extract_filters`: entities found in the query become `where` filters for the search.

    - extract_filters: {model: urchade/gliner_small-v2.1, labels: [person, company],
                        fields: {person: entities.person, company: company}}
      # "what did Ada say about Acme?" -> where {"$and": [{"entities.person": {"$in": ["Ada"]}},
      #                                                   {"company": {"$in": ["Acme"]}}]}

Labels without a field map to `entities.<label>` (where the ingest `extract` step puts them). A list-valued
field matches when any element does on sinks that filter lists (Qdrant); scalar fields work everywhere.
When no entity is found the search is not filtered.

Instead of a model, a `lexicon` of known values per label (product names, teams, regions — the facets a
corpus already has) is matched as whole words, case-insensitively; the filter uses the lexicon's spelling:

    - extract_filters: {lexicon: {team: [Platform, Payments]}, fields: {team: team}}
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from pipelines.steps.base import QueryState, QueryStep, StepConfig
from pipelines.steps.extract import check_key, check_path
from pipelines.steps.rules import Before, Once, named


class ExtractFiltersConfig(StepConfig):
    model: str | None = Field(None, min_length=1, description="An extract model (GLiNER, NER); or give a lexicon.")
    labels: list[str] = Field(default_factory=list, max_length=64, description="Entity types (model; a lexicon's "
                                                                                 "keys are its labels).")
    lexicon: dict[str, list[str]] | None = Field(None, description="Label -> known values, matched as whole "
                                                                   "words instead of running a model.")
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
    def _model_or_lexicon(self) -> ExtractFiltersConfig:
        if (self.model is None) == (self.lexicon is None):
            raise ValueError("give either model (with labels) or lexicon, not both and not neither")
        if self.lexicon is not None:
            if self.labels:
                raise ValueError("labels come from the lexicon's keys; leave labels out")
            for label, values in self.lexicon.items():
                check_key(label, "label")
                if not values or not all(isinstance(v, str) and v.strip() for v in values):
                    raise ValueError(f"lexicon.{label}: expected a non-empty list of non-empty strings")
        elif not self.labels:
            raise ValueError("a model needs labels (the entity types to look for)")
        return self

    @property
    def all_labels(self) -> list[str]:
        return list(self.lexicon) if self.lexicon is not None else self.labels

    @model_validator(mode="after")
    def _fields(self) -> ExtractFiltersConfig:
        for label, path in self.fields.items():
            if label not in self.all_labels:
                raise ValueError(f"fields names label {label!r}, which is not in labels {self.all_labels}")
            check_path(path, "field path")
        return self

    def models(self) -> list[tuple[str, str, str]]:
        return [] if self.model is None else [("model", self.model, "extract")]


class ExtractFiltersStep(QueryStep):
    name = "extract_filters"
    config_class = ExtractFiltersConfig
    uses_model = True   # unless it matches a lexicon
    rules = (Once("only one extract_filters step per query pipeline"),
             Before(named("search"), "filters must be known before the search: put it before steps[{other}]"))

    async def run(self, state: QueryState, options: dict[str, Any]) -> None:
        c: ExtractFiltersConfig = self.config
        found: dict[str, list[str]] = {}
        if c.lexicon is not None:
            for label, values in c.lexicon.items():
                hits = [v for v in values if re.search(rf"(?<!\w){re.escape(v)}(?!\w)", state.text, re.IGNORECASE)]
                if hits:
                    found[label] = hits
        else:
            extra = {"threshold": c.threshold} if c.threshold is not None else {}
            (result,) = await self.ctx.engine.extract(c.model, [state.text], labels=list(c.labels), **extra,
                                                      **self.engine_options(state))
            for entity in result.entities:
                if entity.label in c.labels:
                    texts = found.setdefault(entity.label, [])
                    if entity.text not in texts:
                        texts.append(entity.text)
        parts = [{c.fields.get(label, f"entities.{label}"): {"$in": texts}} for label, texts in found.items()]
        state.notes["entities"] = found
        if parts:
            state.where = parts[0] if len(parts) == 1 else {"$and" if c.combine == "all" else "$or": parts}
