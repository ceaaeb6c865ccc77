"""The engine room's one error type.

Every failure a caller can cause or must handle is a `SieError` with a stable `code`, a message that
names the field, the limit and the value, and the HTTP status the server maps it to at its edge.
"""

from __future__ import annotations


class SieError(Exception):
    """A failure with a stable machine-readable code; mapped once to HTTP by the server."""

    code: str = "internal"
    status: int = 500

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None,
                 status: int | None = None, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code
        if status is not None:
            self.status = status
        self.retry_after = retry_after

    def to_dict(self) -> dict:
        return {"error": {"code": self.code, "message": self.message, "field": self.field}}


class InvalidInput(SieError):
    """The request itself is wrong: a value out of range, a wrong type, an empty list."""

    code, status = "invalid_input", 400


class UnknownModel(SieError):
    """No card of that name in the catalog."""

    code, status = "model_not_found", 404


class UnsupportedCapability(SieError):
    """The model exists but cannot do what was asked (e.g. score on an embedder)."""

    code, status = "unsupported_capability", 400


class CardError(SieError):
    """A model card is malformed: names the file, the key and the reason."""

    code, status = "invalid_card", 500


class ModelLoadFailed(SieError):
    """The model cannot be loaded (missing or broken weights); remembered until an operator reloads it."""

    code, status = "model_load_failed", 502


class WeightsNotFound(ModelLoadFailed):
    """The card's weights are not on this machine; the message says where we looked."""


class ModelLoading(SieError):
    """The model is still loading after the wait timeout; retry after the hinted seconds."""

    code, status = "model_loading", 503


class ResourceExhausted(SieError):
    """Not enough device memory even after evicting idle models, or out of memory in a batch."""

    code, status = "resource_exhausted", 503


class QueueFull(SieError):
    """The model's queue is at capacity: back off for Retry-After seconds (429, not 503)."""

    code, status = "queue_full", 429


class DeadlineExceeded(SieError):
    """The caller's time budget (timeout_ms) ran out before the answer was ready; its queued work was dropped."""

    code, status = "deadline_exceeded", 504


class ModelBusy(SieError):
    """An admin action that needs the model idle (unload) while it has work in flight."""

    code, status = "model_busy", 409


def without_frames(error: BaseException) -> BaseException:
    """`error`, cut from the frames it was raised in, before it crosses threads in a future: its traceback
    holds those frames' locals (a freshly loaded model, a batch's inputs), and the waiter that re-raises it
    adds its own frame, which holds the future — a cycle only the rare full garbage collection frees.
    The message and fields say what went wrong; the compute side logs unexpected errors where they occur."""
    error.__traceback__ = error.__context__ = error.__cause__ = None
    return error
