"""GLiNER span decoding: span probabilities → a consistent set of entities.

Candidates are the (start word, width, label) cells above the threshold whose span fits in the text.
Greedy by score (ties in start, width, label order): a candidate is kept unless it clashes with one
already kept. Flat: any overlap clashes. Nested: only partial overlaps clash (one span inside another
is fine). The same span with another label clashes unless multi_label. Kept spans come back sorted by
start. This is the reference's `greedy_search` with `has_overlapping` / `has_overlapping_nested`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class Span(NamedTuple):
    start: int      # first word (inclusive)
    end: int        # last word (inclusive)
    label: int
    score: float


def _clash(a: Span, b: Span, *, flat: bool, multi_label: bool) -> bool:
    if (a.start, a.end) == (b.start, b.end):
        return not multi_label
    disjoint = a.start > b.end or b.start > a.end
    if flat:
        return not disjoint
    nested = (a.start <= b.start and a.end >= b.end) or (b.start <= a.start and b.end >= a.end)
    return not (disjoint or nested)


def decode_spans(probs: np.ndarray, num_words: int, *, threshold: float, flat: bool = True,
                 multi_label: bool = False) -> list[Span]:
    """probs: [words, max_width, labels]."""
    starts, widths, labels = np.nonzero(probs > threshold)
    candidates = [Span(int(s), int(s + k), int(c), float(probs[s, k, c]))
                  for s, k, c in zip(starts, widths, labels) if s + k + 1 <= num_words]
    kept: list[Span] = []
    for span in sorted(candidates, key=lambda x: -x.score):
        if not any(_clash(span, other, flat=flat, multi_label=multi_label) for other in kept):
            kept.append(span)
    return sorted(kept, key=lambda x: x.start)
