"""`trim`: pack the best candidates into a token budget, so an agent reads less and better context.

    - trim: {max_tokens: 2000, tokenizer: all-MiniLM-L6-v2, min_score: 0.2, dedupe: near}

Greedy: in rank order, a candidate is kept when it fits in what is left of the budget (a longer one that
does not fit is skipped and shorter ones after it may still fit). `truncate_last: true` cuts the first
candidate that does not fit to the tokens left, so the budget is filled exactly. Tokens are counted with
the named model's tokenizer, without special tokens; `tokens_before` counts every retrieved candidate.
Duplicates: `exact` (same text up to case and whitespace) or `near` (word-set Jaccard >= near_threshold).
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import Field

from pipelines.steps.base import Candidate, QueryState, QueryStep, StepConfig
from pipelines.steps.rules import After, Once, named

WORD = re.compile(r"\w+")


class TrimConfig(StepConfig):
    max_tokens: int = Field(gt=0, le=10_000_000, description="The budget (a query may ask for less or more).")
    tokenizer: str | None = Field(None, description="Model whose tokenizer counts (default: the encode model).")
    min_score: float | None = Field(None, description="Candidates scoring below this are dropped.")
    dedupe: Literal["none", "exact", "near"] = "exact"
    near_threshold: float = Field(0.9, gt=0, le=1)
    truncate_last: bool = Field(False, description="Cut the first candidate that does not fit to fill the budget.")
    max_results: int | None = Field(None, gt=0)

    def models(self) -> list[tuple[str, str, str]]:
        return [("tokenizer", self.tokenizer, "tokenizer")] if self.tokenizer else []

    def tokenizer_default_key(self) -> str | None:
        return "tokenizer" if self.tokenizer is None else None

    def token_budget(self) -> int | None:
        return self.max_tokens


def _normal(text: str) -> str:
    return " ".join(text.casefold().split())


def _jaccard(a: set[str], b: set[str]) -> float:
    return len(a & b) / len(a | b) if a or b else 1.0


class TrimStep(QueryStep):
    name = "trim"
    config_class = TrimConfig
    bounded = False
    rules = (Once("only one trim step per query pipeline"),
             After(named("search"), "trim works on search results: put it after steps[{other}]"))

    async def run(self, state: QueryState, options: dict[str, Any]) -> None:
        c: TrimConfig = self.config
        assert c.tokenizer is not None  # the spec fills it from the encode step
        counter = self.ctx.tokenizer(c.tokenizer)
        budget = int(options.get("max_tokens") or c.max_tokens)
        # One engine call for every count the packing needs (a remote engine answers once, not per candidate).
        counting_ms = state.counting_ms()
        counts = await counter.count_async([h.text for h in state.retrieved] + [h.text for h in state.hits],
                                           counting_ms)
        state.tokens_before = sum(counts[:len(state.retrieved)])
        kept: list[Candidate] = []
        seen_exact: set[str] = set()
        seen_words: list[set[str]] = []
        used = 0
        for cand, n in zip(state.hits, counts[len(state.retrieved):]):
            if c.min_score is not None and cand.score < c.min_score:
                continue
            if c.dedupe == "exact" and _normal(cand.text) in seen_exact:
                continue
            words = set(WORD.findall(cand.text.casefold()))
            if c.dedupe == "near" and any(_jaccard(words, w) >= c.near_threshold for w in seen_words):
                continue
            if used + n > budget:
                if not c.truncate_last:
                    continue
                cut, cut_tokens = await _cut(counter, cand.text, budget - used, counting_ms)
                if cut:
                    cand.text = cut
                    used += cut_tokens
                    kept.append(cand)
                break
            kept.append(cand)
            used += n
            seen_exact.add(_normal(cand.text))
            seen_words.append(words)
            if c.max_results is not None and len(kept) >= c.max_results:
                break
        state.hits = kept
        state.tokens_after = used
        state.notes["trim"] = {"max_tokens": budget, "tokenizer": counter.name}


async def _cut(counter: Any, text: str, tokens: int, timeout_ms: float | None) -> tuple[str, int]:
    """The longest prefix of `text` ending on a token boundary that counts at most `tokens`, and its count."""
    if tokens <= 0:
        return "", 0
    offsets = (await counter.encode_async(text, timeout_ms)).offsets
    k = min(tokens, len(offsets))
    while k > 0:
        prefix = text[: offsets[k - 1][1]]
        (n,) = await counter.count_async([prefix], timeout_ms)
        if n <= tokens:  # re-tokenizing a prefix can merge pieces differently
            return prefix, n
        k -= 1
    return "", 0
