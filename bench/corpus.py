"""Deterministic benchmark corpora (fixed seeds, sorted word pool: the same texts in every process)."""

from __future__ import annotations

import math
import random

from tokenizers import Tokenizer


def word_pool(tokenizer: Tokenizer) -> list[str]:
    """Whole-word vocabulary entries (each one token), sorted so the pool never depends on hash order."""
    return sorted(w for w in tokenizer.get_vocab() if w.isalpha() and w.isascii() and len(w) >= 3)


def mixed_corpus(tokenizer: Tokenizer, n: int = 2000, seed: int = 0) -> list[str]:
    """Texts of 5–256 tokens, log-normal lengths (median ~48 tokens): many short, a long tail."""
    rng, words = random.Random(seed), word_pool(tokenizer)
    out = []
    for _ in range(n):
        tokens = min(256, max(5, int(math.exp(rng.gauss(math.log(48), 0.9)))))
        out.append(" ".join(rng.choice(words) for _ in range(tokens - 2)))  # + [CLS] and [SEP]
    return out


def short_corpus(tokenizer: Tokenizer, n: int = 1000, seed: int = 1) -> list[str]:
    """Short sentences of 5–20 tokens."""
    rng, words = random.Random(seed), word_pool(tokenizer)
    return [" ".join(rng.choice(words) for _ in range(rng.randint(3, 18))) for _ in range(n)]
