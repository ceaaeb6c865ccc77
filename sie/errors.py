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

    code, status = "unknown_model", 404


class UnsupportedCapability(SieError):
    """The model exists but cannot do what was asked (e.g. score on an embedder)."""

    code, status = "unsupported_capability", 400


class CardError(SieError):
    """A model card is malformed: names the file, the key and the reason."""

    code, status = "invalid_card", 500


class WeightsNotFound(SieError):
    """The card's weights are not on this machine; the message says where we looked."""

    code, status = "weights_not_found", 502


class ModelLoadFailed(SieError):
    """Weights were found but could not be turned into a runnable model."""

    code, status = "model_load_failed", 502
