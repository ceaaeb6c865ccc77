"""Fast (Rust) tokenization in batches, truncated to the card's max tokens, with a truncation flag."""

from __future__ import annotations

import threading
from dataclasses import dataclass, replace
from pathlib import Path

from tokenizers import Encoding, Tokenizer

from sie.errors import ModelLoadFailed


@dataclass(frozen=True, slots=True)
class Tokenized:
    ids: list[int]
    type_ids: list[int]
    truncated: bool
    # Tokens other tokens may attend to (a prefix of ids); None = all. ColBERT's [MASK] query padding.
    key_length: int | None = None
    # Character span of each token in its text ((0, 0) for special tokens), when asked for.
    offsets: list[tuple[int, int]] | None = None
    # Index of the word (pre-tokenized input) or None (special tokens) per token, when asked for.
    word_ids: list[int | None] | None = None

    def with_ids(self, ids: list[int], key_length: int | None = None) -> Tokenized:
        """Same text, ids rewritten (markers, [MASK] padding): type ids and offsets no longer apply."""
        return replace(self, ids=ids, type_ids=[0] * len(ids), key_length=key_length, offsets=None, word_ids=None)


class TextTokenizer:
    def __init__(self, tokenizer: Tokenizer, max_tokens: int, strategy: str = "longest_first") -> None:
        self._tok = tokenizer
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=max_tokens, strategy=strategy)
        # A second instance for counting: toggling truncation on a shared one would race across threads.
        self._untruncated = Tokenizer.from_str(tokenizer.to_str())
        self._untruncated.no_truncation()
        self.max_tokens = max_tokens
        self.strategy = strategy
        self._limited: dict[tuple[int, str], TextTokenizer] = {}
        self._limited_lock = threading.Lock()

    @classmethod
    def load(cls, folder: Path, max_tokens: int) -> TextTokenizer:
        path = folder / "tokenizer.json"
        if path.exists():
            return cls(Tokenizer.from_file(str(path)), max_tokens)
        try:  # older repos ship only vocab files: let transformers build the fast tokenizer
            from transformers import AutoTokenizer

            return cls(AutoTokenizer.from_pretrained(folder, use_fast=True).backend_tokenizer, max_tokens)
        except Exception as e:
            raise ModelLoadFailed(f"{folder}: no usable fast tokenizer ({e})") from None

    def encode(self, texts: list[str], *, offsets: bool = False, add_special_tokens: bool = True) -> list[Tokenized]:
        encs = self._tok.encode_batch(texts, add_special_tokens=add_special_tokens)
        if offsets:
            return [Tokenized(e.ids, e.type_ids, bool(e.overflowing), offsets=list(e.offsets),
                              word_ids=list(e.word_ids)) for e in encs]
        return [Tokenized(e.ids, e.type_ids, bool(e.overflowing)) for e in encs]

    def encode_pairs(self, pairs: list[tuple[str, str]], *, truncate: str = "longest_first") -> list[Tokenized]:
        """(first, second) pairs as one sequence each. Truncation 'longest_first' is transformers'
        `truncation=True` (cross-encoders); 'only_first' cuts only the first text (NLI premises)."""
        tok = self if truncate == self.strategy else self.limited(self.max_tokens, truncate)
        encs = tok._tok.encode_batch(pairs)
        return [Tokenized(e.ids, e.type_ids, bool(e.overflowing)) for e in encs]

    def encode_words(self, words: list[list[str]]) -> list[Tokenized]:
        """Pre-split words (`is_split_into_words`), with the word index of every token."""
        encs = self._tok.encode_batch(words, is_pretokenized=True)
        return [Tokenized(e.ids, e.type_ids, bool(e.overflowing), word_ids=list(e.word_ids)) for e in encs]

    def limited(self, max_tokens: int, strategy: str | None = None) -> TextTokenizer:
        """A tokenizer truncating at `max_tokens` (ColBERT queries/documents, template bodies) or with
        another pair strategy; built once per setting and shared."""
        key = (max_tokens, strategy or self.strategy)
        if key == (self.max_tokens, self.strategy):
            return self
        with self._limited_lock:
            if key not in self._limited:
                self._limited[key] = TextTokenizer(Tokenizer.from_str(self._tok.to_str()), *key)
            return self._limited[key]

    def count(self, texts: list[str]) -> list[int]:
        """Token counts without truncation (for budgets and usage accounting)."""
        return [len(e.ids) for e in self.untruncated(texts)]

    def untruncated(self, texts: list[str], *, add_special_tokens: bool = True) -> list[Encoding]:
        """The texts whole, however long (token counts and chunking; never fed to the model)."""
        return self._untruncated.encode_batch(texts, add_special_tokens=add_special_tokens)

    @property
    def backend(self) -> Tokenizer:
        return self._tok
