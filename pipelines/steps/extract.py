"""`extract`: entities and classes found by a model become metadata.

    - extract: {model: urchade/gliner_small-v2.1, labels: [person, organization], into: entities}
      # -> metadata.entities.person = ["Ada Lovelace", ...] (unique, in order of appearance)
    - extract: {model: MoritzLaurer/deberta-v3-base-zeroshot, labels: [billing, outage], classes_into: topic}
      # -> metadata.topic = "billing" (the best label), or a list with multi_label: true

Labels become metadata keys, so they may not contain '.' (the path separator of filters).
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from pipelines.paths import set_path
from pipelines.steps.base import BULK, Chunk, IngestStep, StepConfig


def check_key(name: str, what: str) -> str:
    if not name or "." in name or name.startswith("_sie_"):
        raise ValueError(f"{what} {name!r} becomes a metadata key: non-empty, without '.', not starting "
                         f"with '_sie_'")
    return name


def check_path(path: str, what: str) -> str:
    for part in path.split("."):
        check_key(part, what)
    return path


class ExtractConfig(StepConfig):
    model: str = Field(min_length=1)
    labels: list[str] = Field(default_factory=list, max_length=256,
                              description="Entity types / classes (empty: the model card's default labels).")
    threshold: float | None = Field(None, ge=0, le=1)
    multi_label: bool = Field(False, description="Classes: keep every label over the threshold, not only the best.")
    into: str = Field("entities", description="Metadata path that receives {label: [entity texts]}.")
    classes_into: str = Field("classes", description="Metadata path that receives the class label(s).")

    @field_validator("labels")
    @classmethod
    def _labels(cls, labels: list[str]) -> list[str]:
        for label in labels:
            check_key(label, "label")
        return labels

    @field_validator("into", "classes_into")
    @classmethod
    def _paths(cls, path: str) -> str:
        return check_path(path, "path")

    def models(self) -> list[tuple[str, str, str]]:
        return [("model", self.model, "extract")]

    def metadata_outputs(self) -> list[str]:
        return [self.into, self.classes_into]   # entities, or classes: which one the model's kind decides

    def engine_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"multi_label": self.multi_label}
        if self.labels:
            options["labels"] = list(self.labels)
        if self.threshold is not None:
            options["threshold"] = self.threshold
        return options


class ExtractStep(IngestStep):
    name = "extract"
    config_class = ExtractConfig
    uses_model = True

    def apply(self, chunks: list[Chunk]) -> list[Chunk]:
        if not chunks:
            return chunks
        c: ExtractConfig = self.config
        results = self.ctx.engine.extract_sync(c.model, [ch.text for ch in chunks], **c.engine_options(), **BULK)
        for chunk, result in zip(chunks, results, strict=True):
            if result.entities:
                found: dict[str, list[str]] = {}
                for entity in result.entities:
                    texts = found.setdefault(entity.label.replace(".", "_"), [])
                    if entity.text not in texts:
                        texts.append(entity.text)
                set_path(chunk.metadata, c.into, found)
            if result.classifications:
                ranked = sorted(result.classifications, key=lambda x: -x.score)
                set_path(chunk.metadata, c.classes_into,
                         [x.label for x in ranked] if c.multi_label else ranked[0].label)
        return chunks
