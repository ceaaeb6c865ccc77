"""Validation of request inputs: every error names the field, the limit and the value."""

from __future__ import annotations

from collections.abc import Sequence

from sie.catalog.card import ModelCard
from sie.errors import InvalidInput
from sie.models.vector_dtype import VECTOR_DTYPES


def _preview(value: object, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validate_texts(items: object, field: str = "items", max_items: int | None = None) -> list[str]:
    if isinstance(items, str) or not isinstance(items, Sequence):
        raise InvalidInput(f"{field}: expected a list of strings, got {type(items).__name__}", field=field)
    if len(items) == 0:
        raise InvalidInput(f"{field}: the list is empty; send at least one text", field=field)
    if max_items is not None and len(items) > max_items:
        raise InvalidInput(f"{field}: {len(items)} items exceeds the limit of {max_items} per request",
                           field=field)
    for i, text in enumerate(items):
        if not isinstance(text, str):
            raise InvalidInput(f"{field}[{i}]: expected a string, got {type(text).__name__} ({_preview(text)})",
                               field=f"{field}[{i}]")
        if not text.strip():
            raise InvalidInput(f"{field}[{i}]: empty text; send at least one non-space character",
                               field=f"{field}[{i}]")
    return list(items)


def validate_encode_options(card: ModelCard, *, dims: object, dtype: object, normalize: object) -> None:
    full = card.dense_dims
    if full is None:
        raise InvalidInput(f"model: '{card.name}' has no dense output", field="model")
    if dims is not None:
        if isinstance(dims, bool) or not isinstance(dims, int) or dims <= 0:
            raise InvalidInput(f"dims: expected a positive integer, got {_preview(dims)}", field="dims")
        allowed = card.capabilities.encode.dense.matryoshka
        if dims > full:
            raise InvalidInput(f"dims: {dims} exceeds the model's {full} dimensions", field="dims")
        if dims != full and not allowed:
            raise InvalidInput(f"dims: '{card.name}' was not trained for Matryoshka truncation; "
                               f"its only width is {full} (got {dims})", field="dims")
        if dims != full and dims not in allowed:
            raise InvalidInput(f"dims: {dims} is not one of the model's Matryoshka widths "
                               f"{sorted(set(allowed) | {full})}", field="dims")
    if dtype not in VECTOR_DTYPES:
        raise InvalidInput(f"dtype: expected one of {', '.join(VECTOR_DTYPES)}, got {_preview(dtype)}",
                           field="dtype")
    if normalize is not None and not isinstance(normalize, bool):
        raise InvalidInput(f"normalize: expected true, false or null, got {_preview(normalize)}",
                           field="normalize")
