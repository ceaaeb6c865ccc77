"""What the score kinds built on encode share: the query and the documents encoded by the model's own
output, then a measure per document. No head of their own."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from sie.catalog.card import ModelCard
from sie.runtime import encoding
from sie.runtime.kinds.base import Runtime, ScoreKind
from sie.runtime.results import ScoredItem
from sie.runtime.scoring import ranked


class VectorScoreKind(ScoreKind):
    output: ClassVar[str]     # the encode output the measure compares

    def measure(self, query: np.ndarray, document: np.ndarray) -> float:
        raise NotImplementedError

    async def score(self, rt: Runtime, card: ModelCard, query: str, texts: list[str], *, top_k: int | None,
                    instruction: str | None) -> list[ScoredItem]:
        q = (await encoding.encode(rt, card, [query], encoding.EncodeAsk(
            is_query=True, instruction=instruction, output_types=[self.output])))[0]
        docs = await encoding.encode(rt, card, texts, encoding.EncodeAsk(output_types=[self.output]))
        scores = [self.measure(getattr(q, self.output), getattr(d, self.output)) for d in docs]
        return ranked(scores, [d.tokens for d in docs], [d.truncated for d in docs], top_k)
