"""GLiNER's input side: words with their character spans, and the prompt the labels become.

The sequence is  <<ENT>> label_1 <<ENT>> label_2 ... <<SEP>> word_1 ... word_n, tokenized as pre-split
words. Word states are the states of each text word's first sub-token; label states are those of the
<<ENT>> tokens. Word splitting is GLiNER's whitespace splitter: runs of word characters (joined by - or
_), or any single other non-space character; texts are cut to the model's max_len words.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from sie.runtime.compute import SpanMeta
from sie.runtime.tokenizer import TextTokenizer, Tokenized

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


def prepare(tokenizer: TextTokenizer, texts: list[str], labels: list[str], *, max_words: int, ent_token: str,
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
