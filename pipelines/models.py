"""Which models exist and what they can do, asked of the engine the pipeline uses through the Engine
protocol's `models()`: the in-process Engine's catalog, or a server's GET /v1/models (the same listing).
`sie plan` and the sinks' schema are built from this."""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import Any

from pipelines.errors import PipelineError
from sie.errors import SieError
from sie.protocol import ModelsProtocol


@dataclass(frozen=True)
class ModelInfo:
    name: str
    aliases: tuple[str, ...]
    dense_dims: int | None
    matryoshka: tuple[int, ...]
    sparse: bool
    multivector_dims: int | None
    score: bool
    extract: bool

    def can(self, capability: str, outputs: list[str] | None = None) -> str | None:
        """Why this model cannot do `capability` (with these encode outputs), or None."""
        if capability == "score" and not self.score:
            return "has no score capability (pick a reranker / cross-encoder)"
        if capability == "extract" and not self.extract:
            return "has no extract capability (pick an entity or class extractor)"
        if capability == "encode":
            have = {"dense": self.dense_dims is not None, "sparse": self.sparse,
                    "multivector": self.multivector_dims is not None}
            if not any(have.values()):
                return "has no encode capability"
            for kind in outputs or ["dense"]:
                if not have.get(kind):
                    made = ", ".join(k for k, v in have.items() if v)
                    return f"makes no {kind} output (it makes: {made})"
        return None


def from_capabilities(name: str, aliases: list[str], caps: dict[str, Any]) -> ModelInfo:
    encode = caps.get("encode") or {}
    dense = encode.get("dense") or {}
    multi = encode.get("multivector") or {}
    return ModelInfo(name=name, aliases=tuple(aliases), dense_dims=dense.get("dims"),
                     matryoshka=tuple(dense.get("matryoshka") or ()), sparse=bool(encode.get("sparse")),
                     multivector_dims=multi.get("dims"), score=bool(caps.get("score")),
                     extract=bool(caps.get("extract")))


class ModelDirectory:
    """name or alias -> ModelInfo."""

    def __init__(self, infos: list[ModelInfo]) -> None:
        self._by_name: dict[str, ModelInfo] = {}
        for info in infos:
            for key in (info.name, *info.aliases):
                self._by_name[key.lower()] = info

    @classmethod
    def from_engine(cls, engine: ModelsProtocol) -> ModelDirectory:
        """From the engine's `models()`: an in-process Engine, a SieClient, or LocalModels (the catalog alone)."""
        try:
            listing = engine.models_sync()
        except SieError as e:  # only a server can fail to answer
            raise PipelineError(f"engine.url: cannot list the server's models: {e.message}", field="engine.url",
                                code="engine_unavailable") from None
        return cls([from_capabilities(m["id"], m.get("aliases", []), m.get("capabilities", {})) for m in listing])

    def get(self, name: str) -> ModelInfo | None:
        return self._by_name.get(name.lower())

    def unknown(self, name: str) -> str:
        """The message for a name that is not here, with the nearest real name."""
        names = sorted({i.name for i in self._by_name.values()} | set(self._by_name))
        lowered = {n.lower(): n for n in names}
        close = difflib.get_close_matches(name.lower(), list(lowered), n=1, cutoff=0.6)
        # "bge-smal" should find "BAAI/bge-small-en-v1.5": compare against the part after the owner too.
        if not close:
            tails = {n.lower().split("/")[-1]: n for n in names}
            near = difflib.get_close_matches(name.lower(), list(tails), n=1, cutoff=0.5)
            close = [tails[near[0]].lower()] if near else []
        canonical = self._by_name[close[0]].name if close else None
        hint = f"; did you mean '{canonical}'?" if canonical else ""
        return f"unknown model '{name}'{hint} (see `sie models`)"


def directory_for(engine: ModelsProtocol) -> ModelDirectory:
    """The directory of the engine a pipeline runs on (an in-process Engine or a SieClient)."""
    return ModelDirectory.from_engine(engine)


def local_directory() -> ModelDirectory:
    """The in-process engine's models without building it (no torch): what `sie validate` checks against."""
    from sie import LocalModels

    return ModelDirectory.from_engine(LocalModels.from_settings())
