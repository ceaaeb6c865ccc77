"""Score post-processing: relevance from logits, MaxSim, cosine, and the sorted, ranked result list.

Also the input side of pairwise scoring: (query, document) pairs for cross-encoders and the prompt
template of yes/no decoder rerankers (Qwen3-Reranker: prefix + body + suffix, only the body truncated).
"""

from __future__ import annotations

import re

import numpy as np

from sie.catalog.card import PairTemplate, ScoreCapability
from sie.runtime.results import ScoredItem
from sie.runtime.tokenizer import TextTokenizer, Tokenized

_PLACEHOLDER = re.compile(r"\{(instruction|query|document)\}")


def _sigmoid(x: float) -> float:
    return float(1.0 / (1.0 + np.exp(-x)))


def relevance(logits: np.ndarray, spec: ScoreCapability) -> float:
    """One document's score from its head logits (cross-encoder: [labels]; yes-no: [no, yes])."""
    logits = np.asarray(logits, dtype=np.float64)
    if spec.kind == "yes-no":
        margin = float(logits[1] - logits[0])
        return margin if spec.activation == "none" else _sigmoid(margin)   # = softmax([no, yes])[yes]
    if spec.activation == "softmax":
        e = np.exp(logits - logits.max())
        return float(e[spec.label_index] / e.sum())
    value = float(logits[spec.label_index if len(logits) > 1 else 0])
    return _sigmoid(value) if spec.activation == "sigmoid" else value


def maxsim(query: np.ndarray, document: np.ndarray) -> float:
    """ColBERT late interaction: for each query vector its best dot product over the document's, summed."""
    if len(query) == 0 or len(document) == 0:
        return 0.0
    return float((query.astype(np.float32) @ document.astype(np.float32).T).max(axis=1).sum())


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    return float(a @ b / (na * nb)) if na and nb else 0.0


def ranked(scores: list[float], tokens: list[int], truncated: list[bool], top_k: int | None = None
           ) -> list[ScoredItem]:
    """Best first (ties keep input order), rank 0 = best, cut to top_k."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], i))
    if top_k is not None:
        order = order[:top_k]
    return [ScoredItem(index=i, score=scores[i], rank=r, tokens=tokens[i], truncated=truncated[i])
            for r, i in enumerate(order)]


def template_sequences(tokenizer: TextTokenizer, template: PairTemplate, query: str, documents: list[str],
                       instruction: str | None) -> list[Tokenized]:
    """prefix + body + suffix token ids per document. The body (instruction, query, document filled in)
    is tokenized on its own and truncated to what prefix and suffix leave of max_tokens, as the
    Qwen3-Reranker reference does; placeholders are replaced literally (braces in texts are safe)."""
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
