"""Bad input gets a clear error type naming the field, the limit and the value — never a traceback."""

from __future__ import annotations

import pytest

from sie import Engine
from sie.config import Settings
from sie.errors import InvalidInput, SieError, UnknownModel
from sie.server.errors import http_status

MINILM = "sentence-transformers/all-MiniLM-L6-v2"


@pytest.fixture(scope="module")
def engine():
    e = Engine(Settings(device="cpu", cpu_precision="fp32"))
    yield e
    e.close()


@pytest.mark.parametrize("items, field, fragment", [
    ([], "items", "the list is empty"),
    ([""], "items[0]", "empty text"),
    (["ok", "   "], "items[1]", "empty text"),
    (["ok", 3], "items[1]", "expected a string, got int (3)"),
    (["ok", None], "items[1]", "expected a string, got NoneType"),
    ("just a string", "items", "expected a list of strings, got str"),
    ({"text": "x"}, "items", "expected a list of strings, got dict"),
])
def test_bad_items(engine, items, field, fragment):
    with pytest.raises(InvalidInput) as info:
        engine.encode_sync(MINILM, items)
    assert info.value.field == field
    assert http_status(info.value) == 400
    assert fragment in info.value.message and info.value.message.startswith(field)


@pytest.mark.parametrize("options, field, fragment", [
    ({"dims": 128}, "dims", "was not trained for Matryoshka truncation; its only width is 384 (got 128)"),
    ({"dims": 1000}, "dims", "1000 exceeds the model's 384 dimensions"),
    ({"dims": 0}, "dims", "expected a positive integer, got 0"),
    ({"dims": "64"}, "dims", "expected a positive integer, got '64'"),
    ({"dtype": "int4"}, "dtype", "expected one of float32, float16, int8, binary, got 'int4'"),
    ({"normalize": "yes"}, "normalize", "expected true, false or null, got 'yes'"),
])
def test_bad_options(engine, options, field, fragment):
    with pytest.raises(InvalidInput) as info:
        engine.encode_sync(MINILM, ["hello"], **options)
    assert info.value.field == field and fragment in info.value.message


def test_unknown_model_is_404_with_a_suggestion(engine):
    with pytest.raises(UnknownModel) as info:
        engine.encode_sync("all-MiniLM-L6-v3", ["hello"])
    assert http_status(info.value) == 404 and "did you mean" in info.value.message


def test_over_long_text_is_truncated_and_flagged_not_rejected(engine):
    (item,) = engine.encode_sync(MINILM, ["lorem ipsum " * 5000])
    assert item.truncated and item.tokens == 256 and item.dense.shape == (384,)


def test_engine_keeps_serving_after_errors(engine):
    for bad in ([], [1], [""]):
        with pytest.raises(SieError):
            engine.encode_sync(MINILM, bad)
    assert engine.encode_sync(MINILM, ["still here"])[0].dense.shape == (384,)


def test_bad_settings_name_the_variable():
    with pytest.raises(SieError, match=r"setting cpu_precision \(SIE_CPU_PRECISION\).*'fp8'"):
        Settings.load(env={"SIE_CPU_PRECISION": "fp8"})
    with pytest.raises(SieError, match=r"SIE_CPU_TOKEN_BUDGET"):
        Settings.load(env={"SIE_CPU_TOKEN_BUDGET": "-1"})
    assert Settings.load(env={"SIE_ALLOW_DOWNLOADS": "true", "SIE_CATALOG_DIRS": "/a:/b"}).catalog_dirs == ["/a", "/b"]
