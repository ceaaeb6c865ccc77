"""The Engine facade: `encode` (and, as heads land, `score` and `extract`) over the catalog's models.

Async methods run model work on one compute thread per engine (torch parallelizes inside each
operation; two threads competing for the same cores would only thrash caches). The server and
the pipelines call this; `sie.client` implements the same methods over HTTP.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial

import numpy as np
import torch

from sie.catalog import Catalog, ModelCard
from sie.config import Settings
from sie.models.vector_dtype import encode_vectors
from sie.runtime.allocator import keep_activation_memory
from sie.runtime.inputs import validate_encode_options, validate_texts
from sie.runtime.loaded_model import LoadedModel, load_model


@dataclass(frozen=True, slots=True)
class EncodedItem:
    """One input's result. `dense` is float32/float16/int8 [dims], or uint8 packed bits for binary."""

    dense: np.ndarray
    tokens: int
    truncated: bool


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
        vectors = loaded.encode_dense(seqs, dims=dims, normalize=card.normalize if normalize is None else normalize)
        encoded = encode_vectors(vectors, dtype)
        return [EncodedItem(encoded[i], len(s.ids), s.truncated) for i, s in enumerate(seqs)]

    def close(self) -> None:
        self._compute.shutdown(wait=True, cancel_futures=True)
        self._models.clear()
