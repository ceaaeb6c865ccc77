"""`filter` and `map`: declarative operations on chunk metadata. Conditions use the connectors' `where`
language (the same one searches use), evaluated by a small interpreter: nothing is ever evaluated as code.

    - filter: {keep_if: {lang: en, "source.path": {$ne: "CHANGELOG.md"}}}
    - filter: {drop_if: {"entities.person": {$in: ["Internal Bot"]}}}
    - map: {rename: {author: meta.author}, drop: [tmp], set: {dataset: handbook}}
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator, model_validator

from connectors.errors import ConnectorError
from connectors.filters import Node, parse_where
from pipelines.paths import MISSING, matches, pop_path, set_path
from pipelines.steps.base import Chunk, IngestStep, StepConfig
from pipelines.steps.extract import check_path


def checked_where(value: dict[str, Any] | None, name: str = "where") -> dict[str, Any] | None:
    """`value` if it is a valid `where` filter; the filter's own message (under `name`) otherwise."""
    if value is None:
        return None
    try:
        parse_where(value)
    except ConnectorError as e:
        raise ValueError(name + e.message.removeprefix("where")) from None
    return value


class FilterConfig(StepConfig):
    keep_if: dict[str, Any] | None = Field(None, description="Keep chunks whose metadata matches (where language).")
    drop_if: dict[str, Any] | None = Field(None, description="Drop chunks whose metadata matches.")

    @model_validator(mode="after")
    def _one(self) -> FilterConfig:
        if (self.keep_if is None) == (self.drop_if is None):
            raise ValueError("give exactly one of keep_if or drop_if")
        if self.keep_if is not None:
            checked_where(self.keep_if, "keep_if")
        else:
            checked_where(self.drop_if, "drop_if")
        return self


class FilterStep(IngestStep):
    name = "filter"
    config_class = FilterConfig

    def __init__(self, config: FilterConfig, ctx: Any) -> None:
        super().__init__(config, ctx)
        self._keep = config.keep_if is not None
        self._node: Node | None = parse_where(config.keep_if if self._keep else config.drop_if)

    def apply(self, chunks: list[Chunk]) -> list[Chunk]:
        return [ch for ch in chunks if matches(self._node, ch.metadata) == self._keep]


class MapConfig(StepConfig):
    rename: dict[str, str] = Field(default_factory=dict, description="Metadata path -> new path.")
    drop: list[str] = Field(default_factory=list, description="Metadata paths to remove.")
    set: dict[str, Any] = Field(default_factory=dict, description="Metadata path -> a literal value.")

    @model_validator(mode="after")
    def _something(self) -> MapConfig:
        if not (self.rename or self.drop or self.set):
            raise ValueError("give at least one of rename, drop, set")
        for path in [*self.rename, *self.rename.values(), *self.drop, *self.set]:
            check_path(path, "path")
        return self

    @field_validator("set")
    @classmethod
    def _literals(cls, values: dict[str, Any]) -> dict[str, Any]:
        from connectors.metadata import metadata_problem

        problem = metadata_problem({k.replace(".", "_"): v for k, v in values.items()})
        if problem:
            raise ValueError(problem.replace("metadata", "set", 1))
        return values

    def metadata_outputs(self) -> list[str]:
        return list(dict.fromkeys([*self.rename.values(), *self.set]))


class MapStep(IngestStep):
    name = "map"
    config_class = MapConfig

    def apply(self, chunks: list[Chunk]) -> list[Chunk]:
        c: MapConfig = self.config
        for chunk in chunks:
            for old, new in c.rename.items():
                value = pop_path(chunk.metadata, old)
                if value is not MISSING and value is not None:
                    set_path(chunk.metadata, new, value)
            for path in c.drop:
                pop_path(chunk.metadata, path)
            for path, value in c.set.items():
                set_path(chunk.metadata, path, value)
        return chunks
