"""What the kinds that read whole sequences through one head share (cross-encoder, yes-no, NLI): the head's
logits per sequence, and — for the two score kinds — the (query, document) request path."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from sie.catalog.card import ModelCard, ScoreCapability
from sie.runtime.kinds.base import KindMeta, Plan, Runtime, ScoreKind, forward
from sie.runtime.results import ScoredItem, Timing
from sie.runtime.scoring import ranked
from sie.runtime.tokenizer import Tokenized

if TYPE_CHECKING:
    from sie.models.runner import PackedBatch
    from sie.runtime.loaded_model import LoadedModel


class SequenceHeadKind:
    """Mixin: the kind's head turns each packed sequence's token states into logits [labels]."""

    name: str
    row = "logits"
    head_role = "sequence-scoring"

    def compute(self, loaded: LoadedModel, hidden: torch.Tensor, batch: PackedBatch, metas: list[Any]) -> list:
        return list(self.state(loaded)(hidden, batch).cpu().numpy())

    def pair_plan(self, seqs: list[Tokenized]) -> Plan:
        """Pair sequences for the batcher: the "score" work, batched with this kind's sequences only."""
        return Plan("score", ("score", self.name), seqs, [KindMeta(self.name)] * len(seqs))


class PairScoreKind(SequenceHeadKind, ScoreKind):
    """A reranker that reads (query, document) as one sequence: relevance from its head's logits."""

    def pairs(self, loaded: LoadedModel, card: ModelCard, query: str, documents: list[str],
              instruction: str | None) -> list[Tokenized]:
        raise NotImplementedError

    def relevance(self, logits: np.ndarray, spec: ScoreCapability) -> float:
        raise NotImplementedError

    async def score(self, rt: Runtime, card: ModelCard, query: str, texts: list[str], *, top_k: int | None,
                    instruction: str | None) -> list[ScoredItem]:
        spec = card.capabilities.score

        def finish(loaded: LoadedModel, plan: Plan, rows: list[dict], timings: list[Timing]) -> list[ScoredItem]:
            scores = [self.relevance(r["logits"], spec) for r in rows]
            best = ranked(scores, [len(s.ids) for s in plan.seqs], [s.truncated for s in plan.seqs], top_k)
            return [replace(item, timing=timings[item.index]) for item in best]

        return await forward(rt, card, lambda loaded: self.pair_plan(self.pairs(loaded, card, query, texts,
                                                                               instruction)), finish)
