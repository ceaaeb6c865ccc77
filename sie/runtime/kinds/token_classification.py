"""Token classification (NER taggers): each text with character offsets → the tagger head's logits per
token → entity spans, as transformers' token-classification pipeline does it.

Per token: softmax over the tag labels. Aggregation:
- simple: each token keeps its argmax tag; adjacent tokens of the same entity type merge unless the
  next one starts a new entity (B-); the entity score is the mean of its tokens' scores;
- first / average / max: tokens of one word are first forced to agree (the first sub-token's tag, the
  averaged scores, or the most confident sub-token), then words merge as in simple.
Entities tagged O are dropped; a request's labels keep only those entity types. Offsets come from the
fast tokenizer, so `text[start:end]` is exactly the entity's characters (the `text` field is that
substring, not re-joined tokens).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from tokenizers import Tokenizer

from sie.catalog.card import ModelCard
from sie.runtime.kinds.base import ExtractAsk, ForwardExtractKind, HeadLoad, KindMeta, Plan
from sie.runtime.results import Entity, ExtractedItem, Timing
from sie.runtime.tokenizer import Tokenized

if TYPE_CHECKING:
    from sie.models.runner import PackedBatch
    from sie.runtime.loaded_model import LoadedModel


class TokenClassificationKind(ForwardExtractKind):
    name = "token-classification"
    heads = ("token-classification",)
    row = "logits"
    head_role = "token-level extraction"

    def load(self, card: ModelCard, at: HeadLoad) -> object:
        return at.head("token-classification",
                       lambda cls: cls.load(at.folder, at.config, device=at.device, dtype=at.dtype))

    def prepare(self, loaded: LoadedModel, texts: list[str], labels: list[str]) -> Plan:
        seqs = loaded.tokenizer.encode(texts, offsets=True)
        return Plan("extract", ("extract", self.name), seqs, [KindMeta(self.name)] * len(seqs))

    def compute(self, loaded: LoadedModel, hidden: torch.Tensor, batch: PackedBatch, metas: list[Any]) -> list:
        """Tag logits [tokens, labels] per sequence."""
        logits = self.state(loaded)(hidden).cpu().numpy()
        cu = batch.cu_seqlens.tolist()
        return [logits[cu[i]:cu[i + 1]] for i in range(batch.num_seqs)]

    def finish(self, loaded: LoadedModel, plan: Plan, texts: list[str], rows: list[dict], ask: ExtractAsk,
               timings: list[Timing]) -> list[ExtractedItem]:
        spec, tags = loaded.card.capabilities.extract, self.state(loaded).labels
        vocab = TokenVocab.of(loaded.tokenizer.backend)
        out = []
        for i, text in enumerate(texts):
            seq = plan.seqs[i]
            entities = tag_entities(text, seq, rows[i]["logits"], tags, aggregation=spec.aggregation,
                                    threshold=ask.threshold, vocab=vocab)
            if ask.labels:
                entities = [e for e in entities if e.label in ask.labels]
            out.append(ExtractedItem(entities=entities, tokens=len(seq.ids), truncated=seq.truncated,
                                     timing=timings[i]))
        return out


@dataclass(frozen=True)
class TokenVocab:
    """What sub-word detection needs from the tokenizer."""

    tokenizer: Tokenizer
    word_aware: bool          # the model marks word continuations (WordPiece '##', some BPEs)
    unk_id: int | None

    @classmethod
    def of(cls, tokenizer: Tokenizer) -> TokenVocab:
        prefix = getattr(tokenizer.model, "continuing_subword_prefix", None)
        unk = getattr(tokenizer.model, "unk_token", None)
        return cls(tokenizer, bool(prefix), tokenizer.token_to_id(unk) if isinstance(unk, str) else None)


@dataclass
class _Token:
    scores: np.ndarray
    start: int
    end: int
    is_subword: bool


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _tokens(text: str, seq: Tokenized, scores: np.ndarray, vocab: TokenVocab) -> list[_Token]:
    out = []
    for i, tid in enumerate(seq.ids):
        if seq.word_ids[i] is None:  # [CLS], [SEP] and other tokens the post-processor added
            continue
        start, end = seq.offsets[i]
        piece = vocab.tokenizer.id_to_token(tid) or ""
        if tid == vocab.unk_id:
            is_subword = False
        elif vocab.word_aware:
            is_subword = len(piece) != end - start
        else:  # the reference's heuristic for tokenizers that do not mark continuations
            is_subword = start > 0 and " " not in text[start - 1:start + 1]
        out.append(_Token(scores[i], start, end, is_subword))
    return out


def _words(tokens: list[_Token], aggregation: str) -> list[tuple[int, float, int, int]]:
    """(label index, score, start, end) per unit to group: a token (simple) or a word."""
    if aggregation == "simple":
        return [(int(t.scores.argmax()), float(t.scores.max()), t.start, t.end) for t in tokens]
    groups: list[list[_Token]] = []
    for t in tokens:
        if groups and t.is_subword:
            groups[-1].append(t)
        else:
            groups.append([t])
    units = []
    for g in groups:
        if aggregation == "first":
            s = g[0].scores
        elif aggregation == "max":
            s = max(g, key=lambda t: t.scores.max()).scores
        else:  # average
            s = np.nanmean(np.stack([t.scores for t in g]), axis=0)
        units.append((int(s.argmax()), float(s[s.argmax()]), g[0].start, g[-1].end))
    return units


def _tag(label: str) -> tuple[str, str]:
    if label.startswith("B-"):
        return "B", label[2:]
    if label.startswith("I-"):
        return "I", label[2:]
    return "I", label


def tag_entities(text: str, seq: Tokenized, logits: np.ndarray, labels: list[str], *, aggregation: str,
                 threshold: float, vocab: TokenVocab) -> list[Entity]:
    units = _words(_tokens(text, seq, _softmax(np.asarray(logits, dtype=np.float32)), vocab), aggregation)
    groups: list[list[tuple[int, float, int, int]]] = []
    for unit in units:
        bi, tag = _tag(labels[unit[0]])
        if groups and bi != "B" and tag == _tag(labels[groups[-1][-1][0]])[1]:
            groups[-1].append(unit)
        else:
            groups.append([unit])
    entities = []
    for g in groups:
        label = labels[g[0][0]].split("-", 1)[-1]
        score = float(np.nanmean([u[1] for u in g]))
        start, end = g[0][2], g[-1][3]
        if label != "O" and score >= threshold:
            entities.append(Entity(text=text[start:end], label=label, score=score, start=start, end=end))
    return entities
