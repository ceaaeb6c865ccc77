"""Wire formats: JSON (orjson) and msgpack, chosen by Content-Type / Accept.

In msgpack, arrays travel as {"dtype", "shape", "data": raw little-endian bytes} (no float text
round-trip); in JSON they are plain lists. Both directions are decoded by the same functions for
the server and the SDK.
"""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np
import orjson

MSGPACK = "application/msgpack"
JSON = "application/json"
TIMEOUT_HEADER = "X-SIE-Timeout-Ms"  # a request's time budget in milliseconds (sie.server.http reads it)
_MSGPACK_TYPES = ("application/msgpack", "application/x-msgpack", "application/vnd.msgpack")


def wants_msgpack(content_type_or_accept: str | None) -> bool:
    value = (content_type_or_accept or "").lower()
    return any(t in value for t in _MSGPACK_TYPES)


def decode_body(body: bytes, content_type: str | None) -> Any:
    """Raises ValueError with a readable reason when the body is not valid for its content type."""
    if wants_msgpack(content_type):
        try:
            return msgpack.unpackb(body, raw=False, strict_map_key=False)
        except Exception as e:
            raise ValueError(f"body is not valid msgpack: {e}") from None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as e:
        raise ValueError(f"body is not valid JSON: {e}") from None


def pack_array(a: np.ndarray) -> dict:
    a = np.ascontiguousarray(a)
    return {"dtype": a.dtype.name, "shape": list(a.shape), "data": a.astype(a.dtype.newbyteorder("<")).tobytes()}


def unpack_array(value: Any) -> np.ndarray:
    """Inverse of pack_array; plain lists (JSON) become float32 arrays."""
    if isinstance(value, dict) and "data" in value:
        return np.frombuffer(value["data"], dtype=np.dtype(value["dtype"]).newbyteorder("<")).reshape(value["shape"])
    return np.asarray(value, dtype=np.float32)


def encode_body(payload: Any, msgpack_out: bool) -> bytes:
    """`payload` may hold numpy arrays anywhere: packed as raw bytes (msgpack) or lists (JSON)."""
    if msgpack_out:
        return msgpack.packb(payload, default=_msgpack_default, use_bin_type=True)
    return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY, default=_json_default)


def _msgpack_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):
        return pack_array(obj)
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot encode {type(obj).__name__}")


def _json_default(obj: Any) -> Any:
    if isinstance(obj, np.ndarray):  # non-contiguous or exotic dtypes orjson refuses
        return obj.tolist()
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"cannot encode {type(obj).__name__}")
