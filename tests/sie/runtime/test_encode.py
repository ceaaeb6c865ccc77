"""Engine.encode end to end: real MiniLM weights vs sentence-transformers, precision modes, options."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest
from texts import varied_texts

from sie import Engine
from sie.config import Settings

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def reference_vectors(minilm_path):
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(minilm_path), device="cpu")
    texts = varied_texts(240)
    return texts, st.encode(texts, batch_size=32, normalize_embeddings=True, convert_to_numpy=True)


@pytest.fixture(scope="module")
def fp32_engine():
    engine = Engine(Settings(cpu_precision="fp32", device="cpu"))
    yield engine
    engine.close()


def _cosines(items, reference):
    ours = np.stack([r.dense for r in items])
    return (ours * reference).sum(1) / np.linalg.norm(ours, axis=1) / np.linalg.norm(reference, axis=1)


def test_fp32_matches_sentence_transformers_on_240_varied_texts(fp32_engine, reference_vectors):
    texts, reference = reference_vectors
    items = fp32_engine.encode_sync(MINILM, texts)
    cos = _cosines(items, reference)
    assert cos.min() >= 0.99999, f"min cosine {cos.min():.7f} at {texts[int(cos.argmin())]!r:.60}"
    assert any(r.truncated for r in items) and not all(r.truncated for r in items)
    assert all(r.tokens <= 256 for r in items)


@pytest.mark.parametrize("precision, floor", [("mixed", 0.9999), ("int8", 0.99)])
def test_reduced_precision_fidelity(precision, floor, reference_vectors):
    texts, reference = reference_vectors
    engine = Engine(Settings(cpu_precision=precision, device="cpu"))
    try:
        items = engine.encode_sync(MINILM, texts)
        assert engine.model(MINILM).precision in (precision, "fp32")  # mixed falls back without native bf16
    finally:
        engine.close()
    assert _cosines(items, reference).min() >= floor


def test_token_counts_and_truncation_flag(fp32_engine, minilm_path):
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(minilm_path / "tokenizer.json"))
    tok.no_padding()
    short, long = "The cat sat on the mat.", "word " * 600
    a, b = fp32_engine.encode_sync(MINILM, [short, long])
    assert a.tokens == len(tok.encode(short).ids) and not a.truncated
    assert b.tokens == 256 and b.truncated


def test_output_dtypes(fp32_engine):
    texts = ["first sentence about cats", "second sentence about finance and markets"]
    f32 = np.stack([r.dense for r in fp32_engine.encode_sync(MINILM, texts)])
    f16 = np.stack([r.dense for r in fp32_engine.encode_sync(MINILM, texts, dtype="float16")])
    i8 = np.stack([r.dense for r in fp32_engine.encode_sync(MINILM, texts, dtype="int8")])
    b = np.stack([r.dense for r in fp32_engine.encode_sync(MINILM, texts, dtype="binary")])
    assert f16.dtype == np.float16 and np.abs(f16.astype(np.float32) - f32).max() < 1e-3
    assert i8.dtype == np.int8 and np.abs(i8).max() == 127
    cos = (i8.astype(np.float32) * f32).sum(1) / np.linalg.norm(i8.astype(np.float32), axis=1)
    assert cos.min() > 0.999
    assert b.dtype == np.uint8 and b.shape == (2, 48)
    assert (np.unpackbits(b, axis=1).astype(bool) == (f32 > 0)).all()


def test_normalize_option(fp32_engine):
    raw = fp32_engine.encode_sync(MINILM, ["an unnormalized vector"], normalize=False)[0].dense
    unit = fp32_engine.encode_sync(MINILM, ["an unnormalized vector"])[0].dense
    assert abs(np.linalg.norm(unit) - 1) < 1e-5 and abs(np.linalg.norm(raw) - 1) > 1e-3
    assert np.allclose(raw / np.linalg.norm(raw), unit, atol=1e-6)


def test_async_encode_concurrent_calls_match_sync(fp32_engine):
    texts = varied_texts(40, seed=3)

    async def run():
        return await asyncio.gather(*(fp32_engine.encode(MINILM, [t]) for t in texts))

    together = asyncio.run(run())
    alone = fp32_engine.encode_sync(MINILM, texts)
    for (a,), b in zip(together, alone):
        assert np.allclose(a.dense, b.dense, atol=1e-5)


def test_batch_composition_does_not_change_results(fp32_engine):
    """Budget-split batches, length buckets and padding inside attention must not leak across inputs."""
    texts = varied_texts(120, seed=11)
    batched = np.stack([r.dense for r in fp32_engine.encode_sync(MINILM, texts)])
    single = np.stack([fp32_engine.encode_sync(MINILM, [t])[0].dense for t in texts[:25]])
    assert np.abs(batched[:25] - single).max() < 1e-5
