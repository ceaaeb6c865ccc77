"""Engines over temporary catalogs of tiny-model cards (one engine per test, closed afterwards)."""

from __future__ import annotations

import pytest

from sie import Engine
from sie.config import Settings


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
