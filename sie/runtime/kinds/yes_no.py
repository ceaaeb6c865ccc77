"""Yes/no decoder rerankers (Qwen3-Reranker): the card's prompt template around each document, the next-token
logits of its yes and no tokens (sie.models.yes_no); relevance is softmax([no, yes])[yes], or the raw margin.

The template is prefix + body + suffix; the body (instruction, query and document filled in) is tokenized on
its own and truncated to what prefix and suffix leave of max_tokens, as the Qwen3-Reranker reference does."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import numpy as np

from sie.catalog.card import ModelCard, PairTemplate, ScoreCapability
from sie.models.heads import token_id
from sie.runtime.kinds.base import HeadLoad
from sie.runtime.kinds.sequence_head import PairScoreKind
from sie.runtime.scoring import sigmoid
from sie.runtime.tokenizer import TextTokenizer, Tokenized

if TYPE_CHECKING:
    from sie.runtime.loaded_model import LoadedModel

_PLACEHOLDER = re.compile(r"\{(instruction|query|document)\}")


class YesNoKind(PairScoreKind):
    name = "yes-no"
    heads = ("yes-no",)

    def load(self, card: ModelCard, at: HeadLoad) -> object:
        score = card.capabilities.score
        return at.head("yes-no", lambda cls: cls.load(
            at.folder, at.config, yes_id=token_id(at.tokenizer, score.yes_token, "capabilities.score.yes_token"),
            no_id=token_id(at.tokenizer, score.no_token, "capabilities.score.no_token"), device=at.device,
            dtype=at.dtype))

    def pairs(self, loaded: LoadedModel, card: ModelCard, query: str, documents: list[str],
              instruction: str | None) -> list[Tokenized]:
        return template_sequences(loaded.tokenizer, card.capabilities.score.template, query, documents, instruction)

    def relevance(self, logits: np.ndarray, spec: ScoreCapability) -> float:
        logits = np.asarray(logits, dtype=np.float64)
        margin = float(logits[1] - logits[0])
        return margin if spec.activation == "none" else sigmoid(margin)   # = softmax([no, yes])[yes]


def template_sequences(tokenizer: TextTokenizer, template: PairTemplate, query: str, documents: list[str],
                       instruction: str | None) -> list[Tokenized]:
    """prefix + body + suffix token ids per document; placeholders are replaced literally (braces in texts
    are safe)."""
    prefix = tokenizer.encode([template.prefix], add_special_tokens=False)[0].ids if template.prefix else []
    suffix = tokenizer.encode([template.suffix], add_special_tokens=False)[0].ids if template.suffix else []
    room = tokenizer.max_tokens - len(prefix) - len(suffix)
    if room < 1:
        raise ValueError(f"max_tokens {tokenizer.max_tokens} leaves no room after the template's prefix and suffix "
                         f"({len(prefix) + len(suffix)} tokens)")
    values = {"instruction": template.default_instruction if instruction is None else instruction, "query": query}
    bodies = [_PLACEHOLDER.sub(lambda m, d=d: {**values, "document": d}[m.group(1)], template.body) for d in documents]
    out = []
    for body in tokenizer.limited(room).encode(bodies, add_special_tokens=False):
        ids = prefix + body.ids + suffix
        out.append(Tokenized(ids, [0] * len(ids), body.truncated))
    return out
