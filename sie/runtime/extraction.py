"""Extract requests: validated options → the batches to run → entities / classifications per text.

One plan per request, by the card's extract kind:
- token-classification: each text with character offsets → tag logits → BIO spans (token_spans);
- gliner: prompt + words per text → span probabilities → greedy span decoding (span_decoding);
- nli: one (text, hypothesis) pair per text and label → entailment logits → zero_shot.classify.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sie.catalog.card import ExtractCapability, ModelCard
from sie.errors import InvalidInput, UnsupportedCapability
from sie.runtime import gliner_inputs, zero_shot
from sie.runtime.loaded_model import LoadedModel
from sie.runtime.results import Entity, ExtractedItem, Timing
from sie.runtime.span_decoding import decode_spans
from sie.runtime.token_spans import TokenVocab, tag_entities
from sie.runtime.tokenizer import Tokenized

MAX_LABELS = 100


def capability(card: ModelCard) -> ExtractCapability:
    spec = card.capabilities.extract
    if spec is None:
        raise UnsupportedCapability(f"model: '{card.name}' has no extract capability; pick an extractor "
                                    f"(see `sie models`)", field="model")
    return spec


def request_labels(spec: ExtractCapability, labels: object) -> list[str]:
    """The request's labels (deduplicated, order kept) or the card's; GLiNER and NLI need some."""
    if labels is None:
        chosen = list(spec.labels)
    else:
        if isinstance(labels, str) or not isinstance(labels, Sequence):
            raise InvalidInput(f"labels: expected a list of strings, got {type(labels).__name__}", field="labels")
        for i, label in enumerate(labels):
            if not isinstance(label, str) or not label.strip():
                raise InvalidInput(f"labels[{i}]: expected a non-empty string, got {label!r}", field=f"labels[{i}]")
        chosen = list(dict.fromkeys(labels))
    if len(chosen) > MAX_LABELS:
        raise InvalidInput(f"labels: {len(chosen)} labels exceeds the limit of {MAX_LABELS}", field="labels")
    if not chosen and spec.kind in ("gliner", "nli", "similarity"):
        raise InvalidInput(f"labels: a {spec.kind} model extracts the labels you name; send at least one",
                           field="labels")
    return chosen


def request_threshold(spec: ExtractCapability, threshold: object) -> float:
    if threshold is None:
        return spec.threshold
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not 0 <= threshold <= 1:
        raise InvalidInput(f"threshold: expected a number in [0, 1], got {threshold!r}", field="threshold")
    return float(threshold)


@dataclass
class ExtractPlan:
    """What to run for one request, and what post-processing needs to map results back."""

    kind: str                         # COMPUTE kind
    key: tuple                        # batcher key
    seqs: list[Tokenized]
    metas: list[Any]
    labels: list[str]
    words: list[gliner_inputs.Words] = field(default_factory=list)


def plan(loaded: LoadedModel, texts: list[str], labels: list[str]) -> ExtractPlan:
    """Tokenize for the card's kind (runs on a tokenizer thread)."""
    spec = loaded.card.capabilities.extract
    tok = loaded.tokenizer
    if spec.kind == "token-classification":
        seqs = tok.encode(texts, offsets=True)
        return ExtractPlan("extract", ("extract", "tags"), seqs, [None] * len(seqs), labels)
    if spec.kind == "gliner":
        runner = loaded.runner
        g = runner.gliner
        seqs, metas, words = gliner_inputs.prepare(tok, texts, labels, max_words=g.max_len, ent_token=g.ent_token,
                                                   sep_token=g.sep_token,
                                                   class_token_id=runner.class_token_id(tok.backend),
                                                   embed_ent_token=g.embed_ent_token)
        return ExtractPlan("extract", ("extract", "spans"), seqs, metas, labels, words)
    hyps = zero_shot.hypotheses(labels, spec.hypothesis_template)
    seqs = tok.encode_pairs([(t, h) for t in texts for h in hyps], truncate="only_first")
    return ExtractPlan("score", ("score",), seqs, [None] * len(seqs), labels)


def finish(loaded: LoadedModel, p: ExtractPlan, texts: list[str], results: list[dict], *, threshold: float,
           flat: bool, multi_label: bool, timings: list[Timing | None]) -> list[ExtractedItem]:
    spec = loaded.card.capabilities.extract
    out: list[ExtractedItem] = []
    if spec.kind == "nli":
        n = len(p.labels)
        entail = zero_shot.entailment_index({label: i for i, label in enumerate(loaded.heads.classifier.labels)})
        for i, _ in enumerate(texts):
            rows = results[i * n:(i + 1) * n]
            pairs = p.seqs[i * n:(i + 1) * n]
            logits = [r["logits"] for r in rows]
            classes = zero_shot.classify(logits, p.labels, entail, multi_label=multi_label, threshold=threshold)
            out.append(ExtractedItem(classifications=classes, tokens=sum(len(s.ids) for s in pairs),
                                     truncated=any(s.truncated for s in pairs), timing=timings[i * n]))
        return out
    for i, text in enumerate(texts):
        seq, raw = p.seqs[i], results[i]
        if spec.kind == "token-classification":
            tags = loaded.heads.tagger.labels
            entities = tag_entities(text, seq, raw["logits"], tags, aggregation=spec.aggregation,
                                    threshold=threshold, vocab=TokenVocab.of(loaded.tokenizer.backend))
            if p.labels:
                entities = [e for e in entities if e.label in p.labels]
        else:
            w = p.words[i]
            spans = decode_spans(raw["spans"], len(w.words), threshold=threshold, flat=flat, multi_label=multi_label)
            entities = [Entity(text=text[w.starts[s.start]:w.ends[s.end]], label=p.labels[s.label], score=s.score,
                               start=w.starts[s.start], end=w.ends[s.end]) for s in spans]
        out.append(ExtractedItem(entities=entities, tokens=len(seq.ids), truncated=seq.truncated, timing=timings[i]))
    return out
