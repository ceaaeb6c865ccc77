"""One options contract for every implementation of the Engine protocol: each method takes exactly the
options sie.call_options.OPTIONS names, and the in-process Engine, the HTTP client and LocalModels refuse
anything else with the same InvalidInput (same message, same field), the client before sending anything."""

from __future__ import annotations

import inspect

import pytest

from sie import LocalModels, SieClient
from sie.call_options import OPTIONS
from sie.errors import InvalidInput
from sie.protocol import EngineProtocol, ModelsProtocol

MINILM = "sentence-transformers/all-MiniLM-L6-v2"

# (method, positional arguments after the model, bad options): unknown names, and known ones out of range.
CASES = [
    ("encode", (["x"],), {"normalise": True}),
    ("encode", (["x"],), {"truncate": False, "dims": 8}),
    ("encode", (["x"],), {"priority": "urgent"}),
    ("encode", (["x"],), {"timeout_ms": -5}),
    ("score", ("q", ["x"]), {"top_n": 3}),
    ("score", ("q", ["x"]), {"timeout_ms": 0}),
    ("score", ("q", ["x"]), {"admission": "maybe"}),
    ("extract", (["x"],), {"label": ["person"]}),
    ("extract", (["x"],), {"timeout_ms": True}),
    ("count_tokens", (["x"],), {"special_tokens": False}),
    ("count_tokens", (["x"],), {"priority": "later"}),
    ("count_tokens", (["x"],), {"add_special_tokens": 0}),
    ("count_tokens", (["x"],), {"timeout_ms": 0}),
    ("count_tokens", (["x"],), {"admission": "reject"}),  # counting queues behind no model: no admission option
    ("tokenize", (["x"],), {"timeout_ms": "soon"}),
    ("tokenize", (["x"],), {"return_tokens": True}),
    ("tokenize", (["x"],), {"return_ids": "yes"}),
]


@pytest.fixture(scope="module")
def engine():
    from sie import Engine
    from sie.config import Settings

    e = Engine(Settings(device="cpu", cpu_precision="fp32"))
    yield e
    e.close()


@pytest.fixture(scope="module")
def nowhere():
    """A client of a port nobody listens on: any request it sent would be an `unreachable` error instead."""
    client = SieClient("http://127.0.0.1:9", max_retries=0)
    yield client
    client.close()


def refusal(call) -> tuple[type, str, str | None]:
    with pytest.raises(InvalidInput) as info:
        call()
    return type(info.value), info.value.message, info.value.field


@pytest.mark.parametrize(("method", "args", "options"), CASES, ids=[f"{m}-{next(iter(o))}" for m, _, o in CASES])
def test_client_and_engine_refuse_the_same_options_the_same_way(engine, nowhere, method, args, options):
    in_process = refusal(lambda: getattr(engine, f"{method}_sync")(MINILM, *args, **options))
    over_http = refusal(lambda: getattr(nowhere, f"{method}_sync")(MINILM, *args, **options))
    assert over_http == in_process
    name = next(iter(options))
    assert in_process[2] == name and name in in_process[1]
    if name not in OPTIONS[method]:
        assert in_process[1] == (f"{name}: not an option of {method} (its options: {', '.join(OPTIONS[method])}); "
                                 f"got {name}={options[name]!r}")
    if method in ("count_tokens", "tokenize"):
        catalog_only = LocalModels.from_settings()
        assert refusal(lambda: getattr(catalog_only, f"{method}_sync")(MINILM, *args, **options)) == in_process


def keyword_options(function) -> list[str]:
    return [p.name for p in inspect.signature(function).parameters.values() if p.kind is p.KEYWORD_ONLY]


@pytest.mark.parametrize("method", sorted(OPTIONS))
def test_every_implementation_takes_exactly_the_options_of_the_table(method):
    from sie import Engine

    assert keyword_options(getattr(Engine, method)) == list(OPTIONS[method])
    assert keyword_options(getattr(SieClient, method)) == list(OPTIONS[method])
    assert keyword_options(getattr(EngineProtocol, method)) == list(OPTIONS[method])
    if method in ("count_tokens", "tokenize"):
        assert keyword_options(getattr(ModelsProtocol, method)) == list(OPTIONS[method])
        assert keyword_options(getattr(LocalModels, f"{method}_sync")) == list(OPTIONS[method])


def test_every_implementation_is_the_protocol(engine, nowhere):
    assert isinstance(engine, EngineProtocol) and isinstance(nowhere, EngineProtocol)
    assert isinstance(LocalModels.from_settings(), ModelsProtocol)
    assert not isinstance(LocalModels.from_settings(), EngineProtocol)  # the models half only
