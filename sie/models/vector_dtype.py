"""Output encodings of dense vectors: float32, float16, int8 and binary (packed bits)."""

from __future__ import annotations

from typing import Literal

import numpy as np

VectorDtype = Literal["float32", "float16", "int8", "binary"]
VECTOR_DTYPES: tuple[str, ...] = ("float32", "float16", "int8", "binary")


def encode_vectors(vectors: np.ndarray, dtype: str) -> np.ndarray:
    """[B, d] float32 → the wire dtype.

    int8: each vector scaled by its own max |value| to ±127 — a per-vector scale, so compare int8
    vectors by cosine (scale-invariant), not raw dot product.
    binary: sign bits (v > 0) packed 8 per byte, big-endian within a byte (numpy.packbits); compare
    by Hamming distance. d=384 gives 48 bytes.
    """
    if dtype == "float32":
        return vectors.astype(np.float32, copy=False)
    if dtype == "float16":
        return vectors.astype(np.float16)
    if dtype == "int8":
        scale = np.abs(vectors).max(axis=1, keepdims=True)
        scale[scale == 0] = 1.0
        return np.clip(np.rint(vectors / scale * 127.0), -127, 127).astype(np.int8)
    if dtype == "binary":
        return np.packbits(vectors > 0, axis=-1)
    raise ValueError(f"dtype: unknown output dtype '{dtype}'; valid: {', '.join(VECTOR_DTYPES)}")
