"""Fast (Rust) tokenization in batches, truncated to the card's max tokens, with a truncation flag."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from tokenizers import Tokenizer

from sie.errors import ModelLoadFailed


@dataclass(frozen=True, slots=True)
class Tokenized:
    ids: list[int]
    type_ids: list[int]
    truncated: bool


class TextTokenizer:
    def __init__(self, tokenizer: Tokenizer, max_tokens: int) -> None:
        self._tok = tokenizer
        self._tok.no_padding()
        self._tok.enable_truncation(max_length=max_tokens)
        # A second instance for counting: toggling truncation on a shared one would race across threads.
        self._untruncated = Tokenizer.from_str(tokenizer.to_str())
        self._untruncated.no_truncation()
        self.max_tokens = max_tokens

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

    def encode(self, texts: list[str]) -> list[Tokenized]:
        encs = self._tok.encode_batch(texts)
        return [Tokenized(e.ids, e.type_ids, bool(e.overflowing)) for e in encs]

    def encode_pairs(self, pairs: list[tuple[str, str]]) -> list[Tokenized]:
        encs = self._tok.encode_batch(pairs)
        return [Tokenized(e.ids, e.type_ids, bool(e.overflowing)) for e in encs]

    def count(self, texts: list[str]) -> list[int]:
        """Token counts without truncation (for budgets and usage accounting)."""
        return [len(e.ids) for e in self._untruncated.encode_batch(texts)]

    @property
    def backend(self) -> Tokenizer:
        return self._tok
