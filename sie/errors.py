"""The engine room's one error type.

Every failure a caller can cause or must handle is a `SieError` with a stable `code` and a message that
names the field, the limit and the value. Errors say what went wrong, not how to answer it over HTTP:
the server's edge maps each code to a status, once (`sie.server.errors.HTTP_STATUS`).
"""

from __future__ import annotations


class SieError(Exception):
    """A failure with a stable machine-readable code (and, for a busy server, a Retry-After hint)."""

    code: str = "internal"

    def __init__(self, message: str, *, field: str | None = None, code: str | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        if code is not None:
            self.code = code
        self.retry_after = retry_after


class InvalidInput(SieError):
    """The request itself is wrong: a value out of range, a wrong type, an empty list."""

    code = "invalid_input"


class UnknownModel(SieError):
    """No card of that name in the catalog."""

    code = "model_not_found"


class UnsupportedCapability(SieError):
    """The model exists but cannot do what was asked (e.g. score on an embedder)."""

    code = "unsupported_capability"


class CardError(SieError):
    """A model card is malformed: names the file, the key and the reason."""

    code = "invalid_card"


class ModelLoadFailed(SieError):
    """The model cannot be loaded (missing or broken weights); remembered until an operator reloads it."""

    code = "model_load_failed"


class WeightsNotFound(ModelLoadFailed):
    """The card's weights are not on this machine; the message says where we looked."""


class UnprocessableInput(InvalidInput):
    """The request does not fit the shape its route takes: a wrong type, an unknown or missing field, a form
    of input the route does not support. Same code as InvalidInput; the server's edge answers it 422."""


class ModelLoading(SieError):
    """The model is still loading after the wait timeout; retry after the hinted seconds."""

    code = "model_loading"


class ResourceExhausted(SieError):
    """Not enough device memory even after evicting idle models, or out of memory in a batch."""

    code = "resource_exhausted"


class QueueFull(SieError):
    """The model's queue is at capacity: back off for the hinted seconds (a 429 at the edge, not a 503)."""

    code = "queue_full"


class DeadlineExceeded(SieError):
    """The caller's time budget (timeout_ms) ran out before the answer was ready; its queued work was dropped."""

    code = "deadline_exceeded"


class ModelBusy(SieError):
    """An admin action that needs the model idle (unload) while it has work in flight."""

    code = "model_busy"


def without_frames(error: BaseException) -> BaseException:
    """`error`, cut from the frames it was raised in, before it crosses threads in a future: its traceback
    holds those frames' locals (a freshly loaded model, a batch's inputs), and the waiter that re-raises it
    adds its own frame, which holds the future — a cycle only the rare full garbage collection frees.
    The message and fields say what went wrong; the compute side logs unexpected errors where they occur."""
    error.__traceback__ = error.__context__ = error.__cause__ = None
    return error
