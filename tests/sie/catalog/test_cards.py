"""Every shipped card validates; broken cards fail naming the file, the key and the reason."""

from __future__ import annotations

import textwrap

import pytest

from sie.catalog import BUILTIN_DIR, Catalog, load_card
from sie.errors import CardError, UnknownModel

GOOD = """
name: test/tiny
source: {path: /nonexistent}
architecture: bert
capabilities:
  encode: {dense: {dims: 64}}
pooling: mean
max_tokens: 64
"""


def write(tmp_path, text: str, name: str = "card.yaml"):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return p


def test_the_shipped_catalog_serves_exactly_the_cards_of_its_yaml_files():
    """One card per YAML file of the catalog folder, none lost to a duplicate name, an alias clash or a file
    the catalog skips. What each card says (runner, heads, capabilities) is checked file by file in
    test_model_coverage.py."""
    paths = sorted(BUILTIN_DIR.glob("*.yaml"))
    from_files = sorted(load_card(path).name for path in paths)
    assert sorted(card.name for card in Catalog.from_dirs()) == from_files
    assert len(set(from_files)) == len(paths)
    assert not list(BUILTIN_DIR.glob("*.yml")), "the catalog reads *.yaml only: a .yml card would be ignored"


def test_shipped_catalog_resolves_names_and_aliases_case_insensitively():
    catalog = Catalog.from_dirs()
    assert catalog.get("all-minilm-l6-v2").name == "sentence-transformers/all-MiniLM-L6-v2"
    assert catalog.get("baai/BGE-small-en-v1.5").prompts.query.startswith("Represent this sentence")
    assert catalog.get("intfloat/e5-base-v2").prompts.document == "passage: "


def test_unknown_model_suggests_the_closest_name():
    with pytest.raises(UnknownModel, match="did you mean 'BAAI/bge-small-en-v1.5'"):
        Catalog.from_dirs().get("BAAI/bge-smal-en-v1.5")


@pytest.mark.parametrize("mutation, key, reason", [
    (("pooling: mean", "pooling: max"), "pooling", "Input should be 'cls', 'mean' or 'last'"),
    (("max_tokens: 64", "max_tokens: 64\ncolour: blue"), "colour", "unknown key"),
    (("max_tokens: 64", "max_tokens: -3"), "max_tokens", "greater than 0"),
    (("  encode: {dense: {dims: 64}}", "  encode: {dense: {dims: 64, matryoshka: [128]}}"),
     "capabilities.encode.dense", "matryoshka width 128 must be in 1..64"),
    (("source: {path: /nonexistent}", "source: {path: /x, hf: a/b}"), "source", "exactly one of hf, path, package"),
    (("source: {path: /nonexistent}", "source: {path: /x, colour: red}"), "source.colour", "unknown key"),
    (("name: test/tiny\n", ""), "name", "Field required"),
])
def test_broken_card_names_file_key_and_reason(tmp_path, mutation, key, reason):
    path = write(tmp_path, GOOD.replace(*mutation), "broken-card.yaml")
    with pytest.raises(CardError) as info:
        load_card(path)
    message = str(info.value)
    assert message.startswith("broken-card.yaml: ")
    assert f": {key}: " in message
    assert reason in message


def test_unknown_architecture_lists_the_valid_ones(tmp_path):
    path = write(tmp_path, GOOD.replace("architecture: bert", "architecture: bart"), "arch.yaml")
    with pytest.raises(CardError, match=r"arch.yaml: architecture: unknown runner 'bart'; valid: auto, bert"):
        load_card(path)


def test_invalid_yaml_and_non_mapping(tmp_path):
    with pytest.raises(CardError, match="bad.yaml: not valid YAML"):
        load_card(write(tmp_path, "name: [unclosed", "bad.yaml"))
    with pytest.raises(CardError, match="list.yaml: a card must be a mapping"):
        load_card(write(tmp_path, "- a\n- b\n", "list.yaml"))


def test_operator_card_overrides_shipped_card_and_alias_clash_fails(tmp_path):
    write(tmp_path, GOOD.replace("name: test/tiny", "name: sentence-transformers/all-MiniLM-L6-v2"), "mine.yaml")
    catalog = Catalog.from_dirs(tmp_path)
    assert catalog.get("sentence-transformers/all-MiniLM-L6-v2").source.path == "/nonexistent"
    other = tmp_path / "other"
    other.mkdir()
    write(other, GOOD + "aliases: [all-MiniLM-L6-v2]\n", "clash.yaml")
    with pytest.raises(CardError, match="clash.yaml: name 'all-MiniLM-L6-v2' is already used"):
        Catalog.from_dirs(other)


def test_missing_catalog_folder_is_an_error(tmp_path):
    with pytest.raises(CardError, match="does not exist"):
        Catalog.from_dirs(tmp_path / "nope")
