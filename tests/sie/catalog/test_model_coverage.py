"""The shipped catalog covers the model families of the model-coverage issue, and every card maps to a
runner and to heads that exist (cards are data: a typo in an architecture or head kind fails here)."""

from __future__ import annotations

import pytest

from sie.catalog import BUILTIN_DIR, Catalog, load_card
from sie.models import RUNNERS
from sie.models.heads import HEADS
from sie.runtime.kinds import required_heads

CATALOG = Catalog.from_dirs()


@pytest.mark.parametrize("path", sorted(BUILTIN_DIR.glob("*.yaml")), ids=lambda p: p.name)
def test_card_maps_to_a_runner_and_existing_heads(path):
    card = load_card(path)
    assert card.architecture in RUNNERS
    assert set(required_heads(card)) <= set(HEADS)
    assert card.capabilities.encode or card.capabilities.score or card.capabilities.extract


def test_issue_models_are_in_the_catalog_with_their_capabilities():
    def kinds(name):
        c = CATALOG.get(name).capabilities
        enc = c.encode
        out = {k for k in ("dense", "sparse", "multivector") if enc and getattr(enc, k)}
        out |= {f"score:{c.score.kind}"} if c.score else set()
        return out | ({f"extract:{c.extract.kind}"} if c.extract else set())

    expected = {
        "BAAI/bge-m3": {"dense", "sparse", "multivector", "score:late-interaction"},
        "BAAI/bge-reranker-base": {"score:cross-encoder"}, "BAAI/bge-reranker-large": {"score:cross-encoder"},
        "BAAI/bge-reranker-v2-m3": {"score:cross-encoder"},
        "cross-encoder/ms-marco-MiniLM-L-6-v2": {"score:cross-encoder"},
        "mixedbread-ai/mxbai-rerank-large-v1": {"score:cross-encoder"},
        "Alibaba-NLP/gte-modernbert-base": {"dense"}, "nomic-ai/modernbert-embed-base": {"dense"},
        "Qwen/Qwen3-Embedding-0.6B": {"dense", "score:bi-encoder"}, "Qwen/Qwen3-Reranker-0.6B": {"score:yes-no"},
        "colbert-ir/colbertv2.0": {"multivector", "score:late-interaction"},
        "answerdotai/answerai-colbert-small-v1": {"multivector", "score:late-interaction"},
        "naver/splade-v3": {"sparse"}, "naver/splade-cocondenser-ensembledistil": {"sparse"},
        "opensearch-project/opensearch-neural-sparse-encoding-doc-v2-distill": {"sparse"},
        "urchade/gliner_multi-v2.1": {"extract:gliner"}, "urchade/gliner_small-v2.1": {"extract:gliner"},
        "urchade/gliner_medium-v2.1": {"extract:gliner"}, "dslim/bert-base-NER": {"extract:token-classification"},
        "MoritzLaurer/DeBERTa-v3-base-mnli-fever-anli": {"extract:nli"},
    }
    for name, want in expected.items():
        assert kinds(name) == want, name
    new_families = [c for c in CATALOG if c.capabilities.score or c.capabilities.extract
                    or c.architecture in ("modernbert", "qwen2", "qwen3")
                    or (c.capabilities.encode and (c.capabilities.encode.sparse or c.capabilities.encode.multivector))]
    assert len(new_families) >= 25


def test_cards_carry_the_models_own_conventions():
    m3 = CATALOG.get("bge-m3")
    assert m3.pooling == "cls" and m3.max_tokens == 8192 and set(m3.source.include) == {"colbert_linear.pt",
                                                                                          "sparse_linear.pt"}
    colbert = CATALOG.get("colbertv2.0").capabilities.encode.multivector
    assert (colbert.dims, colbert.query_tokens, colbert.document_tokens) == (128, 32, 180)
    assert (colbert.query_marker, colbert.document_marker) == ("[unused0]", "[unused1]")
    assert colbert.mask_augmentation and not colbert.attend_to_mask_tokens and colbert.skip_punctuation
    assert CATALOG.get("answerai-colbert-small-v1").capabilities.encode.multivector.dims == 96
    qwen = CATALOG.get("Qwen/Qwen3-Embedding-0.6B")
    assert qwen.pooling == "last" and qwen.prompts.query_prefix("Find recipes") == "Instruct: Find recipes\nQuery:"
    reranker = CATALOG.get("Qwen/Qwen3-Reranker-0.6B").capabilities.score
    assert (reranker.yes_token, reranker.no_token) == ("yes", "no") and "<think>" in reranker.template.suffix
    nomic = CATALOG.get("nomic-ai/modernbert-embed-base")
    assert (nomic.prompts.query, nomic.prompts.document, nomic.pooling) == ("search_query: ", "search_document: ",
                                                                             "mean")
    assert CATALOG.get("gte-modernbert-base").pooling == "cls"
    doc_only = CATALOG.get("opensearch-project/opensearch-neural-sparse-encoding-doc-v2-distill")
    assert doc_only.capabilities.encode.sparse.query_weights == "idf"


BASE = """
name: test/tiny
source: {path: /nonexistent}
architecture: bert
max_tokens: 64
capabilities:
"""


@pytest.mark.parametrize("capabilities, key, reason", [
    ("  encode: {sparse: {kind: token-weights}}", "capabilities.encode.sparse",
     "kind 'token-weights' needs 'weights'"),
    ("  score: {kind: yes-no}", "capabilities.score", "kind 'yes-no' needs a template"),
    ("  score: {kind: late-interaction}", "capabilities", "score kind 'late-interaction' needs encode.multivector"),
    ("  extract: {kind: nli, hypothesis_template: 'About it.'}", "capabilities.extract",
     "hypothesis_template must contain {}"),
    ("  encode: {multivector: {dims: 8, mask_augmentation: true}}", "capabilities.encode.multivector",
     "mask_augmentation needs query_tokens"),
    ("  score: {kind: yes-no, template: {body: 'no slots'}}", "capabilities.score.template",
     "body must contain {query}"),
    ("  extract: {kind: regex}", "capabilities.extract.kind",
     "Input should be 'gliner', 'token-classification', 'nli' or 'similarity'"),
    ("  encode: {}", "capabilities.encode", "encode needs at least one of dense, sparse, multivector"),
    ("  {}", "capabilities", "a card needs at least one of encode, score, extract"),
])
def test_broken_capabilities_name_the_key_and_reason(tmp_path, capabilities, key, reason):
    from sie.errors import CardError

    path = tmp_path / "broken.yaml"
    path.write_text(BASE + capabilities + "\n")
    with pytest.raises(CardError) as info:
        load_card(path)
    assert f"broken.yaml: {key}: " in str(info.value)
    assert reason in str(info.value)
