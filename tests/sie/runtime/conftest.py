"""Engines over temporary catalogs of tiny-model cards (one engine per test, closed afterwards)."""

from __future__ import annotations

import textwrap

import pytest

from sie import Engine
from sie.config import Settings


def card_yaml(name: str, folder, architecture: str, capabilities: str, *, extra: str = "", max_tokens: int = 64) -> str:
    """A card for a tiny model; `capabilities` is the YAML body under `capabilities:` (2-space indented)."""
    return textwrap.dedent(f"""\
        name: {name}
        source: {{path: "{folder}"}}
        architecture: {architecture}
        max_tokens: {max_tokens}
        precision: {{cpu: fp32}}
        capabilities:
        """) + textwrap.indent(textwrap.dedent(capabilities).strip() + "\n", "  ") + textwrap.dedent(extra)


@pytest.fixture()
def make_engine(tmp_path):
    engines = []

    def make(**cards: str) -> Engine:
        d = tmp_path / f"cards{len(engines)}"
        d.mkdir()
        for fname, text in cards.items():
            (d / f"{fname}.yaml").write_text(text)
        engine = Engine(Settings(device="cpu", catalog_dirs=[str(d)]))
        engines.append(engine)
        return engine

    yield make
    for e in engines:
        e.close()
