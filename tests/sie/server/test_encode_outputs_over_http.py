"""Sparse and multivector outputs over HTTP (JSON and msgpack) and through the SDK equal the in-process
Engine's, on a tiny bge-m3-shaped model (dense + sparse + multivector from one forward pass)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from tiny_cards import card_yaml

from sie import Engine, SieClient
from sie.config import Settings

BGE_M3 = """
encode:
  dense: {dims: 64}
  sparse: {kind: token-weights, weights: sparse_linear.pt}
  multivector: {dims: 64, projection: "colbert_linear.pt:weight", skip_first_token: true}
"""
TEXTS = ["penguins huddle in the Antarctic winter", "stocks fell"]
ALL = ["dense", "sparse", "multivector"]


@pytest.fixture(scope="module")
def catalog(tmp_path_factory, tiny_models):
    folder = tmp_path_factory.mktemp("m3-weights")
    shutil.copytree(tiny_models("xlm-roberta"), folder, dirs_exist_ok=True)
    torch.manual_seed(4)
    torch.save({"weight": torch.randn(1, 64) * 0.3, "bias": torch.tensor([0.1])}, folder / "sparse_linear.pt")
    torch.save({"weight": torch.randn(64, 64) * 0.2, "bias": torch.randn(64) * 0.1}, folder / "colbert_linear.pt")
    d = tmp_path_factory.mktemp("m3-cards")
    (d / "m3.yaml").write_text(card_yaml("tiny/m3", folder, "xlm-roberta", BGE_M3, extra="pooling: cls\n"))
    return d


@pytest.fixture(scope="module")
def server(server_factory, catalog):
    return server_factory({"SIE_CATALOG_DIRS": str(catalog)})


@pytest.fixture(scope="module")
def want(catalog):
    e = Engine(Settings(device="cpu", catalog_dirs=[str(catalog)], cpu_precision="fp32"))
    yield e.encode_sync("tiny/m3", TEXTS, output_types=ALL, sparse_tokens=True)
    e.close()


def test_json_route_carries_every_output(server, want):
    with server.client() as c:
        r = c.post("/v1/encode/tiny/m3", json={"items": [{"text": t} for t in TEXTS],
                                               "params": {"output_types": ALL, "sparse_tokens": True}})
    assert r.status_code == 200, r.text
    for got, w in zip(r.json()["items"], want):
        assert np.abs(np.array(got["dense"]) - w.dense).max() < 1e-5
        assert got["sparse"]["indices"] == w.sparse.indices.tolist()
        assert np.abs(np.array(got["sparse"]["values"]) - w.sparse.values).max() < 1e-5
        assert got["sparse"]["tokens"] == w.sparse.tokens
        assert np.abs(np.array(got["multivector"]) - w.multivector).max() < 1e-5


def test_default_output_and_unknown_output(server):
    with server.client() as c:
        only = c.post("/v1/encode/tiny/m3", json={"items": [{"text": "x"}]}).json()["items"][0]
        assert "dense" in only and "sparse" not in only and "multivector" not in only
        bad = c.post("/v1/encode/tiny/m3", json={"items": [{"text": "x"}], "params": {"output_types": ["colbert"]}})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "params.output_types[0]"


@pytest.mark.parametrize("use_msgpack", [True, False])
def test_sdk_returns_the_same_items(server, want, use_msgpack):
    client = SieClient(server.url, use_msgpack=use_msgpack)
    try:
        got = client.encode_sync("tiny/m3", TEXTS, output_types=["sparse", "multivector"], sparse_top_k=3)
    finally:
        client.close()
    for g, w in zip(got, want):
        assert g.dense is None
        top = np.argsort(-w.sparse.values, kind="stable")[:3]
        assert set(g.sparse.indices.tolist()) == set(w.sparse.indices[top].tolist())
        assert g.sparse.indices.dtype == np.int32 and g.sparse.values.dtype == np.float32
        assert g.multivector.shape == w.multivector.shape
        assert np.abs(g.multivector - w.multivector).max() < 1e-5
