"""The options of every Engine protocol method, and their one validation.

The in-process `Engine` and the HTTP `SieClient` both run these checks before doing anything, so a caller
gets the same `InvalidInput` (same message, same field) from either: an option the method does not take,
a lane that does not exist, an admission mode or a time budget out of range. Torch-free: the SDK imports it.
"""

from __future__ import annotations

from typing import Any, Literal

from sie.errors import InvalidInput

Lane = Literal["interactive", "batch"]
LANES: tuple[Lane, ...] = ("interactive", "batch")
Admission = Literal["wait", "reject"]
MAX_TIMEOUT_MS = 3_600_000

_SCHEDULING = ("admission", "priority", "timeout_ms")
#: method -> the keyword options it takes (a test holds every implementation's signature to this table).
OPTIONS: dict[str, tuple[str, ...]] = {
    "encode": ("is_query", "dims", "dtype", "normalize", "instruction", "output_types", "sparse_top_k",
               "sparse_tokens", *_SCHEDULING),
    "score": ("top_k", "instruction", *_SCHEDULING),
    "extract": ("labels", "threshold", "flat", "multi_label", *_SCHEDULING),
    # Counting queues behind no model, so there is no admission; with a deadline it runs on the tokenizer
    # thread kept for work with a deadline (a query pipeline's final counts), not behind its lane's flood.
    "count_tokens": ("add_special_tokens", "priority", "timeout_ms"),
    "tokenize": ("add_special_tokens", "return_ids", "return_offsets", "priority", "timeout_ms"),
}


def reject_unknown(method: str, unknown: dict[str, Any]) -> None:
    """Options a caller passed that `method` does not take (what landed in its `**unknown`)."""
    if not unknown:
        return
    name = next(iter(unknown))
    value = repr(unknown[name])
    value = value if len(value) <= 40 else value[:37] + "..."
    raise InvalidInput(f"{name}: not an option of {method} (its options: {', '.join(OPTIONS[method])}); "
                       f"got {name}={value}", field=name)


def check_lane(lane: object) -> Lane:
    if lane not in LANES:
        raise InvalidInput(f"priority: expected 'interactive' or 'batch', got {lane!r}", field="priority")
    return lane  # type: ignore[return-value]


def check_admission(admission: object) -> bool:
    """True when a full queue is waited on ('wait'), False when it is an immediate QueueFull ('reject')."""
    if admission not in ("wait", "reject"):
        raise InvalidInput(f"admission: expected 'wait' or 'reject', got {admission!r}", field="admission")
    return admission == "wait"


def check_timeout_ms(timeout_ms: object) -> float | None:
    if timeout_ms is None:
        return None
    if isinstance(timeout_ms, bool) or not isinstance(timeout_ms, int | float) \
            or not 0 < timeout_ms <= MAX_TIMEOUT_MS:
        raise InvalidInput(f"timeout_ms: expected a number of milliseconds in (0, {MAX_TIMEOUT_MS}], "
                           f"got {timeout_ms!r}", field="timeout_ms")
    return float(timeout_ms)


def check_flags(**flags: object) -> None:
    """Options that are true or false, and nothing else (not 1, not "yes")."""
    for name, value in flags.items():
        if not isinstance(value, bool):
            raise InvalidInput(f"{name}: expected true or false, got {value!r}", field=name)


def check_scheduling(priority: object, timeout_ms: object, admission: object) -> tuple[Lane, float | None, bool]:
    """(lane, timeout_ms, wait) of a call, in the order the Engine has always checked them."""
    lane = check_lane(priority)
    wait = check_admission(admission)
    return lane, check_timeout_ms(timeout_ms), wait
