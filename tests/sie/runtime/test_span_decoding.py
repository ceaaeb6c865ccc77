"""GLiNER span decoding on hand-built probabilities: flat vs nested, multi-label, threshold, bounds."""

from __future__ import annotations

import numpy as np

from sie.runtime.kinds.gliner import Span, decode_spans, first_subtokens, prompt_words, split_words

PERSON, CITY = 0, 1


def probs(words: int, cells: dict[tuple[int, int, int], float], width: int = 4, labels: int = 2) -> np.ndarray:
    p = np.zeros((words, width, labels), dtype=np.float32)
    for (start, end, label), value in cells.items():
        p[start, end - start, label] = value
    return p


def test_flat_keeps_the_best_of_overlapping_spans():
    p = probs(6, {(0, 1, PERSON): 0.9, (1, 2, CITY): 0.8, (1, 1, PERSON): 0.7, (3, 3, CITY): 0.6})
    assert decode_spans(p, 6, threshold=0.5) == [Span(0, 1, PERSON, np.float32(0.9)), Span(3, 3, CITY, np.float32(0.6))]


def test_nested_keeps_contained_spans_but_not_partial_overlaps():
    p = probs(6, {(0, 3, PERSON): 0.9, (1, 2, CITY): 0.8, (3, 5, CITY): 0.85, (0, 0, CITY): 0.6})
    got = decode_spans(p, 6, threshold=0.5, flat=False)
    assert [(s.start, s.end, s.label) for s in got] == [(0, 3, PERSON), (0, 0, CITY), (1, 2, CITY)]


def test_multi_label_keeps_one_span_with_several_labels():
    p = probs(3, {(1, 2, PERSON): 0.9, (1, 2, CITY): 0.7})
    assert [(s.label, round(s.score, 2)) for s in decode_spans(p, 3, threshold=0.5)] == [(PERSON, 0.9)]
    got = decode_spans(p, 3, threshold=0.5, multi_label=True)
    assert [(s.start, s.end, s.label) for s in got] == [(1, 2, PERSON), (1, 2, CITY)]


def test_threshold_is_strict_and_spans_past_the_text_are_ignored():
    p = probs(3, {(0, 0, PERSON): 0.5, (1, 1, PERSON): 0.51})
    p[2, 3, CITY] = 0.99                      # words 2..5 of a 3-word text
    assert [(s.start, s.label) for s in decode_spans(p, 3, threshold=0.5)] == [(1, PERSON)]


def test_words_and_prompt_follow_gliner():
    words = split_words("Jean-Luc's e-mail: jl@x.org, co_op!", 100)
    assert words.words == ["Jean-Luc", "'", "s", "e-mail", ":", "jl", "@", "x", ".", "org", ",", "co_op", "!"]
    text = "Jean-Luc's e-mail: jl@x.org, co_op!"
    assert all(text[s:e] == w for w, s, e in zip(words.words, words.starts, words.ends))
    cut = split_words("a b c d", 2)
    assert cut.words == ["a", "b"] and cut.cut
    assert prompt_words(["person", "city"], "<<ENT>>", "<<SEP>>") == ["<<ENT>>", "person", "<<ENT>>", "city", "<<SEP>>"]
    # [CLS] <<ENT>> person <<SEP>> Bar ##ack Obama [SEP]: word ids as a fast tokenizer reports them
    assert first_subtokens([None, 0, 1, 2, 3, 3, 4, None], skip_words=3, num_words=2) == [4, 6]
    assert first_subtokens([None, 0, 1, 2, 3, None], skip_words=3, num_words=3) == [4, -1, -1]
