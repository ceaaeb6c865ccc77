"""A query pipeline's hit as the frameworks' metadata (the LangChain and LlamaIndex adapters share it)."""

from __future__ import annotations

from typing import Any

HIT_FIELDS = ("id", "score", "rerank_score", "first_stage_score", "tokens")


def hit_metadata(hit: dict) -> dict[str, Any]:
    """The record's metadata plus the hit's scores and token count."""
    return {**(hit.get("metadata") or {}), **{k: hit.get(k) for k in HIT_FIELDS}}
