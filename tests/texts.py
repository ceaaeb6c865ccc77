"""Varied, deterministic test texts: real sentences, random-word runs of many lengths (some past the
model's limit), numbers, punctuation, code, non-Latin scripts and emoji."""

from __future__ import annotations

import random
from pathlib import Path

_CALIBRATION = Path(__file__).parent.parent / "sie" / "models" / "calibration.txt"
_EXTRA = [
    "你好，世界。今天天气很好。", "Привет, как дела?", "مرحبا بالعالم", "こんにちは世界", "🙂🚀 emoji only? 👍",
    "x", "?", "3.14159 2.71828 1.41421", "https://example.com/a/b?c=d&e=f#g", "   leading and trailing   ",
    "ALL CAPS SHOUTING TEXT", "tab\tseparated\tvalues", "line one\nline two\nline three",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }", "naïve café résumé façade coöperate",
]


def varied_texts(n: int = 240, seed: int = 7, max_words: int = 400) -> list[str]:
    rng = random.Random(seed)
    sentences = [s for s in _CALIBRATION.read_text().splitlines() if s.strip()] + _EXTRA
    words = " ".join(sentences).split()
    out = list(sentences)
    while len(out) < n:
        k = round(2 ** rng.uniform(0, 8.7))  # 1 .. ~415 words, log-uniform
        out.append(" ".join(rng.choice(words) for _ in range(min(k, max_words))))
    return out[:n]
