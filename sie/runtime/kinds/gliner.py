"""GLiNER zero-shot entity spans: the kind's side of GLiNER (the runner and the span head are
sie.models.gliner).

Inputs: the sequence is  <<ENT>> label_1 <<ENT>> label_2 ... <<SEP>> word_1 ... word_n, tokenized as
pre-split words. Word states are the states of each text word's first sub-token; label states are those
of the <<ENT>> tokens. Word splitting is GLiNER's whitespace splitter: runs of word characters (joined by
- or _), or any single other non-space character; texts are cut to the model's max_len words.

Decoding: candidates are the (start word, width, label) cells above the threshold whose span fits in the
text. Greedy by score (ties in start, width, label order): a candidate is kept unless it clashes with one
already kept. Flat: any overlap clashes. Nested: only partial overlaps clash (one span inside another is
fine). The same span with another label clashes unless multi_label. Kept spans come back sorted by start.
This is the reference's `greedy_search` with `has_overlapping` / `has_overlapping_nested`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import torch

from sie.catalog.card import ModelCard
from sie.runtime.kinds.base import ExtractAsk, ForwardExtractKind, HeadLoad, Plan
from sie.runtime.results import Entity, ExtractedItem, Timing
from sie.runtime.tokenizer import TextTokenizer, Tokenized

if TYPE_CHECKING:
    from sie.models.runner import PackedBatch
    from sie.runtime.loaded_model import LoadedModel

NAME = "gliner"


@dataclass(frozen=True)
class SpanMeta:
    """First sub-token of each text word (-1: none) and the <<ENT>> token of each label."""

    word_tokens: tuple[int, ...]
    label_tokens: tuple[int, ...]

    def kinds(self, card: ModelCard) -> tuple[str, ...]:
        return (NAME,)


class GlinerKind(ForwardExtractKind):
    name = NAME
    heads = ("gliner",)
    row = "spans"
    head_role = "token-level extraction"
    needs_labels = True

    def load(self, card: ModelCard, at: HeadLoad) -> object:
        return at.head("gliner", lambda cls: cls.load(at.folder, device=at.device, dtype=at.dtype,
                                                      tensors=at.runner.take_head_tensors()))

    def prepare(self, loaded: LoadedModel, texts: list[str], labels: list[str]) -> Plan:
        runner, tok = loaded.runner, loaded.tokenizer
        g = runner.gliner
        seqs, metas, words = gliner_sequences(tok, texts, labels, max_words=g.max_len, ent_token=g.ent_token,
                                              sep_token=g.sep_token, class_token_id=runner.class_token_id(tok.backend),
                                              embed_ent_token=g.embed_ent_token)
        return Plan("extract", ("extract", self.name), seqs, metas, words)

    def compute(self, loaded: LoadedModel, hidden: torch.Tensor, batch: PackedBatch, metas: list[Any]) -> list:
        """Span probabilities [words, max_width, labels] per sequence."""
        spans = self.state(loaded)(hidden, batch, [list(m.word_tokens) for m in metas],
                                   [list(m.label_tokens) for m in metas])
        return [s.cpu().numpy() for s in spans]

    def finish(self, loaded: LoadedModel, plan: Plan, texts: list[str], rows: list[dict], ask: ExtractAsk,
               timings: list[Timing]) -> list[ExtractedItem]:
        out = []
        for i, text in enumerate(texts):
            seq, w = plan.seqs[i], plan.context[i]
            spans = decode_spans(rows[i]["spans"], len(w.words), threshold=ask.threshold, flat=ask.flat,
                                 multi_label=ask.multi_label)
            entities = [Entity(text=text[w.starts[s.start]:w.ends[s.end]], label=ask.labels[s.label], score=s.score,
                               start=w.starts[s.start], end=w.ends[s.end]) for s in spans]
            out.append(ExtractedItem(entities=entities, tokens=len(seq.ids), truncated=seq.truncated,
                                     timing=timings[i]))
        return out


WORD = re.compile(r"\w+(?:[-_]\w+)*|\S")


@dataclass(frozen=True)
class Words:
    words: list[str]
    starts: list[int]          # character offset of each word in the text
    ends: list[int]
    cut: bool                  # the text had more than max_len words


def split_words(text: str, max_words: int) -> Words:
    found = [(m.group(), m.start(), m.end()) for m in WORD.finditer(text)]
    kept = found[:max_words]
    return Words([w for w, _, _ in kept], [s for _, s, _ in kept], [e for _, _, e in kept], len(found) > max_words)


def prompt_words(labels: list[str], ent_token: str, sep_token: str) -> list[str]:
    words: list[str] = []
    for label in labels:
        words.append(ent_token)
        if label:
            words.append(label)
    return [*words, sep_token]


def first_subtokens(word_ids: list[int | None], skip_words: int, num_words: int) -> list[int]:
    """Token index of each text word's first sub-token, or -1. Counts distinct word ids as they appear,
    exactly as the reference's word mask does (a word that yields no token shifts nothing it counts)."""
    out = [-1] * num_words
    seen, previous = 0, None
    for idx, wid in enumerate(word_ids):
        if wid is not None and wid != previous:
            seen += 1
            if seen > skip_words and seen - skip_words <= num_words:
                out[seen - skip_words - 1] = idx
        previous = wid
    return out


def gliner_sequences(tokenizer: TextTokenizer, texts: list[str], labels: list[str], *, max_words: int, ent_token: str,
            sep_token: str, class_token_id: int, embed_ent_token: bool = True
            ) -> tuple[list[Tokenized], list[SpanMeta], list[Words]]:
    prompt = prompt_words(labels, ent_token, sep_token)
    words = [split_words(t, max_words) for t in texts]
    encoded = tokenizer.encode_words([prompt + w.words for w in words])
    seqs, metas = [], []
    for w, enc in zip(words, encoded):
        label_tokens = [i for i, tid in enumerate(enc.ids) if tid == class_token_id][: len(labels)]
        if not embed_ent_token:  # the label's own first token instead of its marker
            label_tokens = [i + 1 for i in label_tokens]
        word_tokens = first_subtokens(enc.word_ids, len(prompt), len(w.words))
        cut = w.cut or enc.truncated
        seqs.append(Tokenized(enc.ids, enc.type_ids, cut))
        metas.append(SpanMeta(tuple(word_tokens), tuple(label_tokens)))
    return seqs, metas, words


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
