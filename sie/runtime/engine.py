"""The Engine facade: `encode`, `score`, `extract` over the catalog's models, shared by the server and
the pipelines (`sie.client` implements the same methods over HTTP).

A call: validate → lease the model from the pool (loading it if needed) → tokenize on a worker
thread → queue the sequences in the model's batcher (merged with other requests into token-budget
batches) → post-process per request (Matryoshka width, normalization, output dtype).
"""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from typing import Literal

import numpy as np
import torch

from sie.background_loop import BackgroundLoop
from sie.catalog import Catalog, ModelCard
from sie.config import Settings
from sie.errors import UnsupportedCapability
from sie.metrics import Metrics
from sie.models.pooling import finish
from sie.models.vector_dtype import encode_vectors
from sie.runtime.allocator import keep_activation_memory
from sie.runtime.batcher import Job, TokenBudgetBatcher
from sie.runtime.inputs import validate_encode_options, validate_texts
from sie.runtime.loaded_model import LoadedModel, estimate_footprint, load_model
from sie.runtime.memory import device_budget, host_budget
from sie.runtime.pool import LruModelPool
from sie.runtime.results import EncodedItem, ExtractedItem, ScoredItem, Timing
from sie.runtime.tokenizer import Tokenized

Admission = Literal["wait", "reject"]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


class Engine:
    def __init__(self, settings: Settings | None = None, catalog: Catalog | None = None) -> None:
        self.settings = s = settings or Settings.load()
        self.catalog = catalog or Catalog.from_dirs(*s.catalog_dirs, strict=s.strict_catalog)
        self.device = resolve_device(s.device)
        if s.threads:
            torch.set_num_threads(s.threads)
        if self.device.type == "cpu":
            keep_activation_memory()
        self.metrics = Metrics()
        self.pool = LruModelPool(
            self.catalog, self.device,
            loader=partial(load_model, device=self.device, allow_downloads=s.allow_downloads,
                           cpu_precision=s.cpu_precision, cpu_token_budget=s.cpu_token_budget),
            estimator=partial(estimate_footprint, device=self.device, allow_downloads=s.allow_downloads,
                              cpu_token_budget=s.cpu_token_budget),
            memory_budget=device_budget(self.device, s.memory_budget),
            host_budget=host_budget(self.device, s.host_memory_budget),
            pinned=tuple(s.pin), idle_timeout=s.idle_timeout, load_wait_timeout=s.load_wait_timeout,
            metrics=self.metrics)
        self.batcher = TokenBudgetBatcher(self.metrics, queue_capacity=s.queue_capacity, cross_request=s.batching,
                                          evict_idle=lambda model: self.pool.evict_one_idle(exclude=model))
        self._tokenizers = ThreadPoolExecutor(s.tokenizer_threads, thread_name_prefix="sie-tokenize")
        self._sync = BackgroundLoop("sie-engine-sync")

    # -- models -----------------------------------------------------------------------------------
    def card(self, name: str) -> ModelCard:
        return self.catalog.get(name)

    def model(self, name: str) -> LoadedModel:
        """The loaded model for `name` (loads it if needed). For inspection; requests use leases."""
        with self.pool.acquire_sync(name) as loaded:
            return loaded

    def preload(self) -> None:
        """Load the configured preload and pin lists (blocking)."""
        for name in dict.fromkeys([*self.settings.pin, *self.settings.preload]):
            self.pool.load(name)

    # -- encode -----------------------------------------------------------------------------------
    async def encode(self, model: str, items: list[str], *, is_query: bool = False, dims: int | None = None,
                     dtype: str = "float32", normalize: bool | None = None, instruction: str | None = None,
                     admission: Admission = "wait") -> list[EncodedItem]:
        card = self.catalog.get(model)
        texts = validate_texts(items)
        validate_encode_options(card, dims=dims, dtype=dtype, normalize=normalize)
        prefix = instruction if instruction is not None else (card.prompts.query if is_query
                                                              else card.prompts.document)
        async with await self.pool.acquire(card.name) as loaded:
            seqs, tokenize_s = await self._tokenize(loaded, [prefix + t for t in texts] if prefix else texts)
            job = await self.batcher.run(loaded, "encode", ("encode", "dense"), seqs, [None] * len(seqs),
                                         block=admission == "wait")
        vectors = finish(torch.from_numpy(np.stack([r["dense"] for r in job.results])),
                         dims=None if dims == card.dense_dims else dims,
                         normalize=card.normalize if normalize is None else normalize)
        encoded = encode_vectors(vectors.numpy(), dtype)
        return [EncodedItem(encoded[i], len(s.ids), s.truncated, timing=_timing(job, i, tokenize_s))
                for i, s in enumerate(seqs)]

    def encode_sync(self, model: str, items: list[str], **options) -> list[EncodedItem]:
        """Blocking convenience for scripts and pipelines; same code path as `encode`."""
        return self._sync.run(self.encode(model, items, **options))

    # -- score / extract ----------------------------------------------------------------------------
    async def score(self, model: str, query: str, items: list[str], *, top_k: int | None = None,
                    instruction: str | None = None, admission: Admission = "wait") -> list[ScoredItem]:
        """Relevance of each item to `query`, sorted best first (cross-encoder, late interaction, bi-encoder)."""
        card = self.catalog.get(model)
        raise UnsupportedCapability(f"model: '{card.name}' has no score capability; pick a reranker "
                                    f"(see `sie models`)", field="model")

    async def extract(self, model: str, items: list[str], *, labels: list[str] | None = None,
                      threshold: float | None = None, flat: bool = True, multi_label: bool = False,
                      admission: Admission = "wait") -> list[ExtractedItem]:
        """Entities (zero-shot or token-classification) or classifications for each item."""
        card = self.catalog.get(model)
        raise UnsupportedCapability(f"model: '{card.name}' has no extract capability; pick an extractor "
                                    f"(see `sie models`)", field="model")

    def score_sync(self, model: str, query: str, items: list[str], **options) -> list[ScoredItem]:
        return self._sync.run(self.score(model, query, items, **options))

    def extract_sync(self, model: str, items: list[str], **options) -> list[ExtractedItem]:
        return self._sync.run(self.extract(model, items, **options))

    # -- plumbing ---------------------------------------------------------------------------------
    async def _tokenize(self, loaded: LoadedModel, texts: list[str]) -> tuple[list[Tokenized], float]:
        start = time.monotonic()
        seqs = await asyncio.get_running_loop().run_in_executor(self._tokenizers, loaded.tokenizer.encode, texts)
        elapsed = time.monotonic() - start
        self.metrics.phase_seconds.labels(loaded.card.name, "tokenize").observe(elapsed)
        return seqs, elapsed

    def close(self) -> None:
        self.batcher.close()
        self.pool.close()
        self._tokenizers.shutdown(wait=False, cancel_futures=True)
        self._sync.close()


def _timing(job: Job, i: int, tokenize_s: float) -> Timing:
    return Timing(queue_ms=round(job.queue_seconds[i] * 1000, 3), tokenize_ms=round(tokenize_s * 1000, 3),
                  compute_ms=round(job.compute_seconds[i] * 1000, 3))
