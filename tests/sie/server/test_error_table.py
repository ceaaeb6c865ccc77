"""One table at the server's edge maps every room's error codes to HTTP statuses: each code raised anywhere
has its row, errors carry no status of their own, and the envelope is the same for every room's errors."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest

from connectors.errors import ConnectorError
from pipelines.errors import PipelineError, PipelineNotFound, SourceError
from sie.errors import InvalidInput, QueueFull, SieError, UnknownModel
from sie.server.errors import HTTP_STATUS, UnprocessableInput, error_response, http_status, invalid

ROOT = Path(__file__).resolve().parents[3]
ROOMS = ("sie", "connectors", "pipelines")
# Codes the edge names for errors the HTTP framework raises itself (Starlette's 404 / 405).
FRAMEWORK_CODES = {"not_found", "method_not_allowed"}


def codes_in(tree: ast.AST) -> set[str]:
    """`code = "x"` / `code: str = "x"` (an error class's code), `code="x"` (a raise site), and a `code`
    parameter's default."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "code" for t in node.targets):
            value = node.value
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name) and node.target.id == "code":
            value = node.value
        elif isinstance(node, ast.keyword) and node.arg == "code":
            value = node.value
        elif isinstance(node, ast.arguments):
            named = node.posonlyargs + node.args + node.kwonlyargs
            defaults = [None] * (len(node.posonlyargs + node.args) - len(node.defaults)) + node.defaults \
                + node.kw_defaults
            found |= {d.value for a, d in zip(named, defaults)
                      if a.arg == "code" and isinstance(d, ast.Constant) and isinstance(d.value, str)}
            continue
        else:
            continue
        if isinstance(value, ast.Constant) and isinstance(value.value, str):
            found.add(value.value)
    return found


def raised_codes() -> set[str]:
    return {code for room in ROOMS for file in (ROOT / room).rglob("*.py")
            for code in codes_in(ast.parse(file.read_text(), str(file)))}


def test_every_code_any_room_raises_has_a_row_and_every_row_is_raised():
    raised = raised_codes()
    # The scan finds each room's codes: class attributes, raise sites and ConnectorError's default.
    assert {"model_not_found", "internal", "empty", "invalid_config", "collection_missing", "pipeline_not_found",
            "store_unavailable", "payload_too_large"} <= raised
    assert sorted(raised - set(HTTP_STATUS)) == []
    assert sorted(set(HTTP_STATUS) - raised - FRAMEWORK_CODES) == []


def test_errors_carry_a_code_and_no_status():
    for error in (InvalidInput("x"), UnknownModel("x"), PipelineError("x"), ConnectorError("x")):
        assert isinstance(error.code, str) and not hasattr(error, "status")
    with pytest.raises(TypeError):
        SieError("x", status=400)


@pytest.mark.parametrize(("error", "status"), [
    (InvalidInput("dims: 7", field="dims"), 400),
    (UnprocessableInput("speed: unknown field", field="speed"), 422),
    (UnknownModel("model: 'x' is not in the catalog", field="model"), 404),
    (QueueFull("queue", retry_after=0.2), 429),
    (PipelineNotFound("pipeline 'x'", field="name"), 404),
    (SourceError("records: 3 records exceeds source.max_records (2)", code="payload_too_large"), 413),
    (ConnectorError("collection 'x' does not exist", code="collection_missing"), 404),
    (ConnectorError("sink.url: required"), 400),
    (SieError("a code no table row names", code="no_such_code"), 500),
])
def test_the_status_is_the_codes_row(error, status):
    assert http_status(error) == status


def test_input_that_does_not_fit_its_route_keeps_the_invalid_input_code_at_422():
    error = invalid([{"loc": ("params", "dtype"), "type": "literal_error", "msg": "Input should be 'float32'",
                      "input": "int4"}])
    assert isinstance(error, InvalidInput) and error.code == "invalid_input" and error.field == "params.dtype"
    assert http_status(error) == 422 and http_status(InvalidInput("x")) == 400


def test_every_rooms_error_gets_the_same_envelope_and_retry_after():
    for error in (UnknownModel("model: 'x'", field="model"),
                  ConnectorError("where.a: unknown operator", field="where.a", code="invalid_filter")):
        response = error_response(None, error)
        assert response.status_code == http_status(error)
        assert json.loads(response.body) == {"error": {"code": error.code, "message": error.message,
                                                       "field": error.field}}
        assert "retry-after" not in response.headers
    busy = error_response(None, QueueFull("queue full", retry_after=0.2))
    assert busy.status_code == 429 and busy.headers["retry-after"] == "1"
    assert error_response(None, SieError("no key", code="unauthorized")).headers["www-authenticate"] == "Bearer"
