"""The Engine facade: `encode` (and, as heads land, `score` and `extract`) over the catalog's models.

Async methods run model work on one compute thread per engine (torch parallelizes inside each
operation; two threads competing for the same cores would only thrash caches). The server and
the pipelines call this; `sie.client` implements the same methods over HTTP.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import numpy as np
import torch

from sie.catalog import Catalog, ModelCard
from sie.config import Settings
from sie.errors import UnsupportedCapability
from sie.models.pooling import finish
from sie.models.vector_dtype import encode_vectors
from sie.runtime.allocator import keep_activation_memory
from sie.runtime.compute import run_all
from sie.runtime.inputs import validate_encode_options, validate_texts
from sie.runtime.loaded_model import LoadedModel, load_model
from sie.runtime.results import EncodedItem, ExtractedItem, ScoredItem


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Engine:
    def __init__(self, settings: Settings | None = None, catalog: Catalog | None = None) -> None:
        self.settings = settings or Settings.load()
        self.catalog = catalog or Catalog.from_dirs(*self.settings.catalog_dirs)
        self.device = resolve_device(self.settings.device)
        if self.settings.threads:
            torch.set_num_threads(self.settings.threads)
        if self.device.type == "cpu":
            keep_activation_memory()
        self._models: dict[str, LoadedModel] = {}
        self._load_lock = threading.Lock()
        self._compute = ThreadPoolExecutor(1, thread_name_prefix="sie-compute")

    # -- models -----------------------------------------------------------------------------------
    def card(self, name: str) -> ModelCard:
        return self.catalog.get(name)

    def model(self, name: str) -> LoadedModel:
        """The loaded model for `name`, loading it on first use."""
        card = self.catalog.get(name)
        with self._load_lock:
            loaded = self._models.get(card.name)
            if loaded is None:
                loaded = load_model(card, self.device, allow_downloads=self.settings.allow_downloads,
                                    cpu_precision=self.settings.cpu_precision,
                                    cpu_token_budget=self.settings.cpu_token_budget)
                self._models[card.name] = loaded
            return loaded

    def loaded(self) -> list[LoadedModel]:
        return list(self._models.values())

    # -- encode -----------------------------------------------------------------------------------
    async def encode(self, model: str, items: list[str], *, is_query: bool = False, dims: int | None = None,
                     dtype: str = "float32", normalize: bool | None = None,
                     instruction: str | None = None) -> list[EncodedItem]:
        call = partial(self._encode_blocking, model, items, is_query=is_query, dims=dims, dtype=dtype,
                       normalize=normalize, instruction=instruction)
        return await asyncio.get_running_loop().run_in_executor(self._compute, call)

    def encode_sync(self, model: str, items: list[str], **options) -> list[EncodedItem]:
        """Blocking convenience for scripts; runs on the same compute thread as `encode`."""
        return self._compute.submit(partial(self._encode_blocking, model, items, **options)).result()

    def _encode_blocking(self, model: str, items: list[str], *, is_query: bool = False, dims: int | None = None,
                         dtype: str = "float32", normalize: bool | None = None,
                         instruction: str | None = None) -> list[EncodedItem]:
        card = self.catalog.get(model)
        texts = validate_texts(items)
        validate_encode_options(card, dims=dims, dtype=dtype, normalize=normalize)
        if dims == card.dense_dims:
            dims = None
        prefix = instruction if instruction is not None else (card.prompts.query if is_query
                                                              else card.prompts.document)
        loaded = self.model(card.name)
        seqs = loaded.tokenizer.encode([prefix + t for t in texts] if prefix else texts)
        raw = run_all(loaded, "encode", seqs, [None] * len(seqs))
        vectors = finish(torch.from_numpy(np.stack([r["dense"] for r in raw])), dims=dims,
                         normalize=card.normalize if normalize is None else normalize)
        encoded = encode_vectors(vectors.numpy(), dtype)
        return [EncodedItem(encoded[i], len(s.ids), s.truncated) for i, s in enumerate(seqs)]

    # -- score / extract ----------------------------------------------------------------------------
    async def score(self, model: str, query: str, items: list[str], *, top_k: int | None = None,
                    instruction: str | None = None) -> list[ScoredItem]:
        """Relevance of each item to `query`, sorted best first (cross-encoder, late interaction, bi-encoder)."""
        card = self.catalog.get(model)
        raise UnsupportedCapability(f"model: '{card.name}' has no score capability; pick a reranker "
                                    f"(see `sie models`)", field="model")

    async def extract(self, model: str, items: list[str], *, labels: list[str] | None = None,
                      threshold: float | None = None, flat: bool = True,
                      multi_label: bool = False) -> list[ExtractedItem]:
        """Entities (zero-shot or token-classification) or classifications for each item."""
        card = self.catalog.get(model)
        raise UnsupportedCapability(f"model: '{card.name}' has no extract capability; pick an extractor "
                                    f"(see `sie models`)", field="model")

    def close(self) -> None:
        self._compute.shutdown(wait=True, cancel_futures=True)
        self._models.clear()
