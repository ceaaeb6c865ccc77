"""Card features end to end on tiny models: prompts, Matryoshka, pooling, weight sources, the fallback runner."""

from __future__ import annotations

import shutil
import textwrap

import numpy as np
import pytest
import torch

from sie.errors import ModelLoadFailed, WeightsNotFound

# Read from this syntax tree by tests/sie/models/declared.py: the registry entries this module proves against
# their reference (test_registry.py), and the tiny model the runner contract test loads for each family here.
PARITY_TESTED = {("runner", "auto"): "test_fallback_runner_matches_own_runner"}
# DeBERTa-v2 has no own runner: the fallback runs it.
CONTRACT_MODELS = {"auto": ("deberta-v2", {"head": "sequence-classification", "num_labels": 3},
                            "score: {kind: cross-encoder}")}


def card(name: str, folder, *, arch: str = "bert", dims: int = 64, pooling: str = "mean", extra: str = "") -> str:
    return textwrap.dedent(f"""
        name: {name}
        source: {{path: "{folder}"}}
        architecture: {arch}
        capabilities:
          encode: {{dense: {{dims: {dims}{extra}}}}}
        pooling: {pooling}
        max_tokens: 64
        prompts: {{query: "query: ", document: "passage: "}}
        precision: {{cpu: fp32}}
    """)


def vec(engine, model, texts, **kw):
    return np.stack([r.dense for r in engine.encode_sync(model, texts, **kw)])


def test_prompts_prefix_queries_and_documents(make_engine, tiny_models):
    e = make_engine(t=card("t/tiny", tiny_models("bert")))
    q = vec(e, "t/tiny", ["what is sie"], is_query=True)
    d = vec(e, "t/tiny", ["what is sie"])
    assert np.allclose(q, vec(e, "t/tiny", ["what is sie"], instruction="query: "), atol=1e-6)
    assert np.allclose(d, vec(e, "t/tiny", ["passage: what is sie"], instruction=""), atol=1e-6)
    assert not np.allclose(q, d, atol=1e-3)


def test_matryoshka_truncates_then_renormalizes(make_engine, tiny_models):
    e = make_engine(t=card("t/mrl", tiny_models("bert"), extra=", matryoshka: [16, 32]"))
    full = vec(e, "t/mrl", ["alpha beta", "gamma"], normalize=False)
    cut = vec(e, "t/mrl", ["alpha beta", "gamma"], dims=32)
    expect = full[:, :32] / np.linalg.norm(full[:, :32], axis=1, keepdims=True)
    assert cut.shape == (2, 32) and np.allclose(cut, expect, atol=1e-6)
    with pytest.raises(Exception, match=r"dims: 24 is not one of the model's Matryoshka widths \[16, 32, 64\]"):
        vec(e, "t/mrl", ["x"], dims=24)


def test_fallback_runner_matches_own_runner(make_engine, tiny_models):
    folder = tiny_models("bert")
    e = make_engine(own=card("t/own", folder, pooling="cls"), auto=card("t/auto", folder, arch="auto", pooling="cls"))
    texts = ["a", "a much longer sentence with many words in it", "mid length text"]
    assert np.abs(vec(e, "t/own", texts) - vec(e, "t/auto", texts)).max() < 1e-5


def test_fallback_runner_serves_mpnet(make_engine, tiny_models):
    """MPNet is no preset of tests/tiny_models.py: the test names its config class and arguments itself."""
    from transformers import AutoModel

    folder = tiny_models(("MPNetConfig", {"vocab_size": 30527, "hidden_size": 64, "num_hidden_layers": 2,
                                          "num_attention_heads": 4, "intermediate_size": 128,
                                          "max_position_embeddings": 80}))
    model = AutoModel.from_pretrained(folder).eval()
    assert type(model).__name__ == "MPNetModel"
    e = make_engine(m=card("t/mpnet", folder, arch="auto"))
    texts = ["short", "a somewhat longer input sentence"]
    ours = vec(e, "t/mpnet", texts, instruction="")
    tok = e.model("t/mpnet").tokenizer
    for i, s in enumerate(tok.encode(texts)):
        with torch.no_grad():
            ref = model(input_ids=torch.tensor([s.ids])).last_hidden_state[0].mean(0)
        assert np.abs(ours[i] - (ref / ref.norm()).numpy()).max() < 1e-5


def test_missing_weights_say_where_they_looked(make_engine, tmp_path):
    e = make_engine(m=card("t/missing", tmp_path / "nowhere"))
    with pytest.raises(WeightsNotFound, match=r"source.path: no config.json in .*nowhere"):
        e.encode_sync("t/missing", ["x"])
    assert e.encode_sync("all-MiniLM-L6-v2", ["other models keep working"])[0].tokens > 0


def test_missing_package_and_hf_cache(make_engine, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    pkg = card("t/pkg", "x").replace('source: {path: "x"}', "source: {package: no_such_pkg_sie}")
    hf = card("t/hf", "x").replace('source: {path: "x"}', "source: {hf: acme/absent-model}")
    e = make_engine(p=pkg, h=hf)
    with pytest.raises(WeightsNotFound, match=r"Python package 'no_such_pkg_sie' is not installed"):
        e.encode_sync("t/pkg", ["x"])
    with pytest.raises(WeightsNotFound, match=r"not in the local Hugging Face cache \(looked in .*acme--absent"):
        e.encode_sync("t/hf", ["x"])


def test_pickle_only_checkpoint_is_refused(make_engine, tiny_models, tmp_path):
    folder = tmp_path / "pickled"
    shutil.copytree(tiny_models("bert"), folder)
    (folder / "model.safetensors").rename(folder / "pytorch_model.bin")
    e = make_engine(p=card("t/pickled", folder))
    with pytest.raises(ModelLoadFailed, match=r"found pytorch_model.bin: sie loads safetensors only"):
        e.encode_sync("t/pickled", ["x"])


def test_corrupt_weights_fail_that_model_only(make_engine, tiny_models, tmp_path):
    folder = tmp_path / "corrupt"
    shutil.copytree(tiny_models("bert"), folder)
    (folder / "model.safetensors").write_bytes(b"\x00" * 100)
    e = make_engine(c=card("t/corrupt", folder))
    with pytest.raises(ModelLoadFailed, match=r"t/corrupt: loading .* failed"):
        e.encode_sync("t/corrupt", ["x"])
    assert e.encode_sync("all-MiniLM-L6-v2", ["fine"])[0].dense.shape == (384,)


def test_max_tokens_beyond_positions_is_a_load_error(make_engine, tiny_models):
    e = make_engine(b=card("t/big", tiny_models("bert")).replace("max_tokens: 64", "max_tokens: 512"))
    with pytest.raises(ModelLoadFailed, match=r"max_tokens 512 exceeds the model's 80 positions"):
        e.encode_sync("t/big", ["x"])
