"""Zero-shot classification: through an NLI cross-encoder, as transformers' zero-shot pipeline does it,
or with an embedder's own vectors (`similarity`).

NLI: each (text, hypothesis(label)) pair is one premise/hypothesis sequence (the text is what truncation
cuts). Single-label: softmax of the entailment logits across the labels. Multi-label (or one label):
per label, softmax over (contradiction, entailment) and keep the entailment probability.
Similarity: cosine between the text's and each hypothesis's embedding. Single-label: softmax of
cosine / temperature across the labels (as CLIP-style zero-shot does). Multi-label: the cosine itself,
floored at 0.
"""

from __future__ import annotations

import numpy as np

from sie.errors import ModelLoadFailed
from sie.runtime.results import Classification


def entailment_index(label2id: dict[str, int]) -> int:
    for label, index in label2id.items():
        if label.lower().startswith("entail"):
            return int(index)
    raise ModelLoadFailed(f"NLI model has no 'entailment' label (labels: {sorted(label2id)}); "
                          "zero-shot classification needs one")


def hypotheses(labels: list[str], template: str) -> list[str]:
    return [template.replace("{}", label) for label in labels]


def classify(logits: np.ndarray, labels: list[str], entail: int, *, multi_label: bool,
             threshold: float = 0.0) -> list[Classification]:
    """logits: [labels, nli classes] for one text → classifications sorted best first."""
    logits = np.asarray(logits, dtype=np.float64)
    if multi_label or len(labels) == 1:
        contradiction = -1 if entail == 0 else 0
        scores = _softmax(logits[:, [contradiction, entail]])[:, 1]
    else:
        scores = _softmax(logits[:, entail])
    return _ranked(labels, scores, threshold)


def classify_by_similarity(texts: np.ndarray, labels_vecs: np.ndarray, labels: list[str], *, multi_label: bool,
                           temperature: float, threshold: float = 0.0) -> list[list[Classification]]:
    """texts: [n, d], labels_vecs: [k, d] (any scale) → per text, classifications sorted best first."""
    cos = (_unit(texts) @ _unit(labels_vecs).T).astype(np.float64)
    scores = cos.clip(0.0, 1.0) if multi_label or len(labels) == 1 else _softmax(cos / temperature)
    return [_ranked(labels, row, threshold) for row in scores]


def _unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(1e-12)


def _softmax(x: np.ndarray) -> np.ndarray:
    """Over the last axis."""
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _ranked(labels: list[str], scores: np.ndarray, threshold: float) -> list[Classification]:
    """Best first (ties: the order the labels were given), those under `threshold` dropped."""
    order = sorted(range(len(labels)), key=lambda i: (-scores[i], i))
    return [Classification(labels[i], float(scores[i])) for i in order if scores[i] >= threshold]
