"""Zero-shot classification through an NLI cross-encoder, as transformers' zero-shot pipeline does it.

Each (text, hypothesis(label)) pair is one premise/hypothesis sequence (the text is what truncation cuts),
through the sequence-classification head. Single-label: softmax of the entailment logits across the
labels. Multi-label (or one label): per label, softmax over (contradiction, entailment) and keep the
entailment probability.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from sie.catalog.card import ModelCard
from sie.errors import ModelLoadFailed
from sie.runtime.kinds.base import ExtractAsk, ForwardExtractKind, HeadLoad, Plan
from sie.runtime.kinds.sequence_head import SequenceHeadKind
from sie.runtime.results import Classification, ExtractedItem, Timing
from sie.runtime.zero_shot import hypotheses, ranked_classes, softmax

if TYPE_CHECKING:
    from sie.runtime.loaded_model import LoadedModel


class NliKind(SequenceHeadKind, ForwardExtractKind):
    name = "nli"
    heads = ("sequence-classification",)
    needs_labels = True
    classifies = True

    def load(self, card: ModelCard, at: HeadLoad) -> object:
        head = at.head("sequence-classification",
                       lambda cls: cls.load(at.folder, at.config, device=at.device, dtype=at.dtype))
        if not any(label.lower().startswith("entail") for label in head.labels):
            raise ModelLoadFailed(f"capabilities.extract.kind: 'nli' needs an 'entailment' label; the model's "
                                  f"labels are {head.labels}", field="capabilities.extract.kind")
        return head

    def prepare(self, loaded: LoadedModel, texts: list[str], labels: list[str]) -> Plan:
        hyps = hypotheses(labels, loaded.card.capabilities.extract.hypothesis_template)
        return self.pair_plan(loaded.tokenizer.encode_pairs([(t, h) for t in texts for h in hyps],
                                                            truncate="only_first"))

    def finish(self, loaded: LoadedModel, plan: Plan, texts: list[str], rows: list[dict], ask: ExtractAsk,
               timings: list[Timing]) -> list[ExtractedItem]:
        n = len(ask.labels)
        entail = entailment_index({label: i for i, label in enumerate(self.state(loaded).labels)})
        out = []
        for i, _ in enumerate(texts):
            pairs = plan.seqs[i * n:(i + 1) * n]
            logits = [r["logits"] for r in rows[i * n:(i + 1) * n]]
            classes = classify(logits, ask.labels, entail, multi_label=ask.multi_label, threshold=ask.threshold)
            out.append(ExtractedItem(classifications=classes, tokens=sum(len(s.ids) for s in pairs),
                                     truncated=any(s.truncated for s in pairs), timing=timings[i * n]))
        return out


def entailment_index(label2id: dict[str, int]) -> int:
    for label, index in label2id.items():
        if label.lower().startswith("entail"):
            return int(index)
    raise ModelLoadFailed(f"NLI model has no 'entailment' label (labels: {sorted(label2id)}); "
                          "zero-shot classification needs one")


def classify(logits: np.ndarray, labels: list[str], entail: int, *, multi_label: bool,
             threshold: float = 0.0) -> list[Classification]:
    """logits: [labels, nli classes] for one text → classifications sorted best first."""
    logits = np.asarray(logits, dtype=np.float64)
    if multi_label or len(labels) == 1:
        contradiction = -1 if entail == 0 else 0
        scores = softmax(logits[:, [contradiction, entail]])[:, 1]
    else:
        scores = softmax(logits[:, entail])
    return ranked_classes(labels, scores, threshold)
