"""Engine.score end to end on tiny models, each against a reference computed the reference's way:
cross-encoders (transformers pair logits), a Qwen3-Reranker-style yes/no decoder (its prompt code),
ColBERT late interaction (the ColBERT tokenization and MaxSim) and a bi-encoder (cosine)."""

from __future__ import annotations

import string

import numpy as np
import pytest
import torch
from tiny_cards import card_yaml
from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

from sie.errors import InvalidInput, UnsupportedCapability

QUERY = "where do penguins live"
DOCS = ["Penguins live in the southern hemisphere, mostly Antarctica.",
        "The stock market fell sharply on Monday.",
        "Emperor penguins breed during the Antarctic winter; they huddle for warmth!",
        "penguins",
        "A very long document about birds " + "and their habitats " * 30]


def check_ranking(results, want_scores, top_k=None):
    order = sorted(range(len(want_scores)), key=lambda i: -want_scores[i])[:top_k]
    assert [r.index for r in results] == order
    assert [r.rank for r in results] == list(range(len(order)))
    assert np.allclose([r.score for r in results], [want_scores[i] for i in order], atol=1e-4)
    assert all(a.score >= b.score for a, b in zip(results, results[1:]))


@pytest.mark.parametrize("activation, num_labels", [("sigmoid", 1), ("none", 1), ("softmax", 2)])
def test_cross_encoder_matches_pair_logits(make_engine, tiny_models, activation, num_labels):
    folder = tiny_models("bert", head="sequence-classification", num_labels=num_labels)
    label = 1 if num_labels == 2 else 0
    spec = f"score: {{kind: cross-encoder, activation: {activation}, label_index: {label}}}"
    engine = make_engine(ce=card_yaml("t/ce", folder, "bert", spec))
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    with torch.no_grad():
        logits = model(**tok([QUERY] * len(DOCS), DOCS, truncation=True, max_length=64, padding=True,
                             return_tensors="pt")).logits
    activations = {"sigmoid": lambda x: torch.sigmoid(x[:, 0]), "none": lambda x: x[:, 0],
                   "softmax": lambda x: torch.softmax(x, -1)[:, 1]}
    want = activations[activation](logits).tolist()
    results = engine.score_sync("t/ce", QUERY, DOCS)
    check_ranking(results, want)
    assert results[[r.index for r in results].index(4)].truncated
    assert all(r.tokens == len(tok(QUERY, DOCS[r.index], truncation=True, max_length=64)["input_ids"])
               for r in results)
    check_ranking(engine.score_sync("t/ce", QUERY, DOCS, top_k=2), want, top_k=2)


TEMPLATE = """
score:
  kind: yes-no
  yes_token: "yes"
  no_token: "no"
  template:
    prefix: "judge whether the document meets the query. answer yes or no. "
    body: "instruct: {instruction} query: {query} document: {document}"
    suffix: " answer:"
    default_instruction: "given a web search query, retrieve relevant passages"
"""


def qwen3_reranker_reference(folder, query, docs, instruction, max_length):
    """The Qwen3-Reranker model card's scoring code, with this test's prompt."""
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForCausalLM.from_pretrained(folder).eval()
    prefix = tok.encode("judge whether the document meets the query. answer yes or no. ", add_special_tokens=False)
    suffix = tok.encode(" answer:", add_special_tokens=False)
    pairs = [f"instruct: {instruction} query: {query} document: {d}" for d in docs]
    enc = tok(pairs, padding=False, truncation="longest_first", return_attention_mask=False,
              max_length=max_length - len(prefix) - len(suffix), add_special_tokens=False)
    scores = []
    for ids in enc["input_ids"]:
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([prefix + ids + suffix])).logits[0, -1]
        pair = torch.stack([logits[tok.convert_tokens_to_ids("no")], logits[tok.convert_tokens_to_ids("yes")]])
        scores.append(torch.log_softmax(pair, -1)[1].exp().item())
    return scores


@pytest.mark.parametrize("instruction", [None, "find {braces} and {query} literally"])
def test_yes_no_decoder_reranker_matches_the_qwen3_reranker_recipe(make_engine, tiny_models, instruction):
    folder = tiny_models("qwen3", head="causal-lm")
    engine = make_engine(r=card_yaml("t/rerank", folder, "qwen3", TEMPLATE, max_tokens=96))
    want = qwen3_reranker_reference(folder, QUERY, DOCS,
                                    instruction or "given a web search query, retrieve relevant passages", 96)
    results = engine.score_sync("t/rerank", QUERY, DOCS, instruction=instruction)
    check_ranking(results, want)
    assert results[[r.index for r in results].index(4)].truncated and max(r.tokens for r in results) == 96


def colbert_folder(tiny_models, tmp_path):
    import tiny_models as tm

    torch.manual_seed(11)
    return tm.with_tensors(tiny_models("bert"), tmp_path / "colbert", {"linear.weight": torch.randn(16, 64) * 0.2})


COLBERT = """
encode:
  multivector: {dims: 16, query_marker: "[unused0]", document_marker: "[unused1]", query_tokens: 24,
                document_tokens: 40, mask_augmentation: true, skip_punctuation: true}
score: {kind: late-interaction}
"""


def colbert_reference(folder, query, docs):
    """ColBERTv2's QueryTokenizer / DocTokenizer and colbert_score, on the transformers model."""
    tok = AutoTokenizer.from_pretrained(folder)
    bert = AutoModel.from_pretrained(folder).eval()
    from safetensors.torch import load_file

    linear = load_file(str(folder / "model.safetensors"))["linear.weight"]
    q = tok([". " + query], padding="max_length", truncation=True, max_length=24, return_tensors="pt")
    ids, mask = q["input_ids"], q["attention_mask"]
    ids[:, 1] = tok.convert_tokens_to_ids("[unused0]")
    ids[ids == tok.pad_token_id] = tok.mask_token_id
    with torch.no_grad():
        Q = torch.nn.functional.normalize(bert(ids, attention_mask=mask).last_hidden_state @ linear.T, dim=-1)[0]
    skip = {tok.encode(p, add_special_tokens=False)[0] for p in string.punctuation}
    vectors, scores = [], []
    for d in docs:
        enc = tok([". " + d], truncation=True, max_length=40, return_tensors="pt")
        ids = enc["input_ids"]
        ids[:, 1] = tok.convert_tokens_to_ids("[unused1]")
        with torch.no_grad():
            D = torch.nn.functional.normalize(bert(ids).last_hidden_state @ linear.T, dim=-1)[0]
        D = D[torch.tensor([t not in skip for t in ids[0].tolist()])]
        vectors.append(D)
        scores.append((Q @ D.T).max(dim=1).values.sum().item())
    return Q, vectors, scores


def test_late_interaction_matches_colbert(make_engine, tiny_models, tmp_path):
    folder = colbert_folder(tiny_models, tmp_path)
    engine = make_engine(c=card_yaml("t/colbert", folder, "bert", COLBERT))
    Q, D, want = colbert_reference(folder, QUERY, DOCS)
    q = engine.encode_sync("t/colbert", [QUERY], is_query=True, output_types=["multivector"])[0]
    assert q.multivector.shape == (24, 16) and q.dense is None
    assert np.abs(q.multivector - Q.numpy()).max() <= 1e-4
    docs = engine.encode_sync("t/colbert", DOCS, output_types=["multivector"])
    for got, ref in zip(docs, D):
        assert got.multivector.shape == tuple(ref.shape)
        assert np.abs(got.multivector - ref.numpy()).max() <= 1e-4
    check_ranking(engine.score_sync("t/colbert", QUERY, DOCS), want)


def test_bi_encoder_scores_by_cosine(make_engine, tiny_models):
    folder = tiny_models("bert")
    engine = make_engine(b=card_yaml("t/bi", folder, "bert", "encode: {dense: {dims: 64}}\nscore: {kind: bi-encoder}"))
    q = engine.encode_sync("t/bi", [QUERY], is_query=True)[0].dense
    d = np.stack([r.dense for r in engine.encode_sync("t/bi", DOCS)])
    want = (d @ q / np.linalg.norm(d, axis=1) / np.linalg.norm(q)).tolist()
    check_ranking(engine.score_sync("t/bi", QUERY, DOCS), want)


def test_score_errors_name_the_field(make_engine, tiny_models):
    folder = tiny_models("bert", head="sequence-classification", num_labels=1)
    engine = make_engine(ce=card_yaml("t/ce", folder, "bert", "score: {kind: cross-encoder}"),
                         e=card_yaml("t/emb", tiny_models("bert"), "bert", "encode: {dense: {dims: 64}}"))
    with pytest.raises(UnsupportedCapability, match="model: 't/emb' has no score capability"):
        engine.score_sync("t/emb", QUERY, DOCS)
    with pytest.raises(InvalidInput, match=r"query\[0\]: empty text"):
        engine.score_sync("t/ce", " ", DOCS)
    with pytest.raises(InvalidInput, match="top_k: expected a positive integer, got 0"):
        engine.score_sync("t/ce", QUERY, DOCS, top_k=0)
    with pytest.raises(InvalidInput, match=r"model: 't/ce' has no encode capability"):
        engine.encode_sync("t/ce", ["x"])
