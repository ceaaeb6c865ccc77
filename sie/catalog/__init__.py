"""The catalog: model cards loaded from YAML files (this folder, plus any folders the operator adds)."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from pathlib import Path

import yaml
from pydantic import ValidationError

from sie.catalog.card import ModelCard
from sie.errors import CardError, ModelLoadFailed, UnknownModel
from sie.models import RUNNERS

BUILTIN_DIR = Path(__file__).parent

__all__ = ["BUILTIN_DIR", "Catalog", "ModelCard", "load_card"]


def _key_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


def load_card(path: Path) -> ModelCard:
    """Parse and validate one card; every failure names the file, the key and the reason."""
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise CardError(f"{path.name}: not valid YAML: {e}") from None
    if not isinstance(data, dict):
        raise CardError(f"{path.name}: a card must be a mapping of keys, got {type(data).__name__}")
    try:
        card = ModelCard.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            reason = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
            problems.append(f"{path.name}: {_key_path(err['loc'])}: {reason}")
        raise CardError("; ".join(problems), field=_key_path(e.errors()[0]["loc"])) from None
    if card.architecture not in RUNNERS:
        raise CardError(
            f"{path.name}: architecture: unknown runner '{card.architecture}'; valid: {', '.join(sorted(RUNNERS))}",
            field="architecture")
    return card


def _declared_name(path: Path) -> str:
    """The `name:` a broken card meant to declare, if it can be read at all; else the file stem."""
    try:
        data = yaml.safe_load(path.read_text())
        if isinstance(data, dict) and isinstance(data.get("name"), str):
            return data["name"]
    except yaml.YAMLError:
        pass
    return path.stem


class Catalog:
    """Name → card, with aliases; built from the shipped cards plus extra folders."""

    def __init__(self, cards: Iterable[ModelCard]) -> None:
        self._cards: dict[str, ModelCard] = {}
        self._names: dict[str, str] = {}
        self.broken: dict[str, CardError] = {}  # name (or file stem) → why its card was refused
        for card in cards:
            self.add(card)

    @classmethod
    def from_dirs(cls, *dirs: Path | str, include_builtin: bool = True, strict: bool = True) -> Catalog:
        """Cards from the shipped folder plus `dirs`. With strict=False (the server) a broken card
        does not stop start-up: its model answers 502 with the card's error instead."""
        folders = ([BUILTIN_DIR] if include_builtin else []) + [Path(d) for d in dirs]
        catalog = cls([])
        for folder in folders:
            if not folder.is_dir():
                raise CardError(f"catalog folder {folder} does not exist")
            for path in sorted(folder.glob("*.yaml")):
                try:
                    catalog.add(load_card(path), origin=path.name)
                except CardError as e:
                    if strict:
                        raise
                    catalog.broken[_declared_name(path)] = e
        return catalog

    def add(self, card: ModelCard, origin: str = "") -> None:
        """Add a card; a later card with the same name replaces an earlier one (operator overrides)."""
        for key in (card.name, *card.aliases):
            owner = self._names.get(key.lower())
            if owner is not None and owner != card.name:
                raise CardError(f"{origin or card.name}: name '{key}' is already used by card '{owner}'",
                                field="aliases")
        old = self._cards.get(card.name)
        if old is not None:
            for key in (old.name, *old.aliases):
                self._names.pop(key.lower(), None)
        self._cards[card.name] = card
        for key in (card.name, *card.aliases):
            self._names[key.lower()] = card.name

    def get(self, name: str) -> ModelCard:
        canonical = self._names.get(name.lower()) if isinstance(name, str) else None
        if canonical is None and name in self.broken:
            err = self.broken[name]
            raise ModelLoadFailed(f"model: the card of '{name}' is invalid: {err.message}", field="model")
        if canonical is None:
            close = difflib.get_close_matches(str(name).lower(), list(self._names), n=1, cutoff=0.75)
            hint = f"; did you mean '{self._names[close[0]]}'?" if close else ""
            raise UnknownModel(f"model: unknown model '{name}'{hint} ({len(self._cards)} models in the catalog; "
                               f"see GET /v1/models or `sie models`)", field="model")
        return self._cards[canonical]

    def __contains__(self, name: str) -> bool:
        return isinstance(name, str) and name.lower() in self._names

    def __iter__(self) -> Iterator[ModelCard]:
        return iter(self._cards.values())

    def __len__(self) -> int:
        return len(self._cards)
