"""Forward passes. `RUNNERS` maps a card's `architecture` to the runner that implements it.

A plain dict, imported lazily, so reading the catalog never imports torch-heavy modules. Every
registered architecture has a parity test against its reference (tests/sie/models/).
"""

from __future__ import annotations

import importlib

RUNNERS: dict[str, tuple[str, str]] = {
    "bert": ("sie.models.bert", "BertRunner"),
    "roberta": ("sie.models.bert", "BertRunner"),
    "xlm-roberta": ("sie.models.bert", "BertRunner"),
    "modernbert": ("sie.models.modernbert", "ModernBertRunner"),
    "qwen2": ("sie.models.qwen", "QwenRunner"),
    "qwen3": ("sie.models.qwen", "QwenRunner"),
    "gliner": ("sie.models.gliner", "GlinerRunner"),
    "auto": ("sie.models.auto", "AutoModelRunner"),
}


def runner_class(architecture: str) -> type:
    module, cls = RUNNERS[architecture]
    return getattr(importlib.import_module(module), cls)
