"""A folder of pipelines, as `sie serve --pipelines DIR` and `sie mcp --pipelines DIR` see it: every
`*.yaml` / `*.yml` file up to two levels down (examples/<name>/pipeline.yaml) that declares `steps` is a
pipeline. A broken one is listed with its problems instead of stopping the server."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from pipelines.errors import PipelineError, PipelineNotFound, SpecError
from pipelines.spec import Pipeline, load_pipeline

MAX_DEPTH = 2


@dataclass
class PipelineLibrary:
    folder: Path
    pipelines: dict[str, Pipeline] = field(default_factory=dict)
    broken: dict[str, str] = field(default_factory=dict)      # file -> problems

    @classmethod
    def load(cls, folder: str | Path) -> PipelineLibrary:
        folder = Path(folder).resolve()
        if not folder.is_dir():
            raise PipelineError(f"pipelines: {folder} is not a folder", field="pipelines")
        library = cls(folder)
        for path in _candidates(folder):
            shown = str(path.relative_to(folder))
            try:
                p = load_pipeline(path, strict_env=True, shown_as=shown)
            except SpecError as e:
                library.broken[shown] = e.message
                continue
            if p.name in library.pipelines:
                first = library.pipelines[p.name].path.relative_to(folder)
                library.broken[shown] = f"{shown}:1:1 name: pipeline name {p.name!r} is already used by {first}"
                continue
            library.pipelines[p.name] = p
        return library

    def get(self, name: str) -> Pipeline:
        if name not in self.pipelines:
            raise PipelineNotFound(f"pipeline: no pipeline named {name!r} in {self.folder} "
                                   f"(have: {', '.join(sorted(self.pipelines)) or 'none'})", field="name")
        return self.pipelines[name]


def _candidates(folder: Path) -> list[Path]:
    out = []
    for dirpath, dirnames, filenames in os.walk(folder):
        depth = len(Path(dirpath).relative_to(folder).parts)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and depth < MAX_DEPTH)
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.suffix in (".yaml", ".yml") and not path.is_symlink() and _declares_steps(path):
                out.append(path)
    return out


def _declares_steps(path: Path) -> bool:
    """Cheap sniff so data or config YAML next to pipelines is not mistaken for a broken pipeline."""
    try:
        if path.stat().st_size > 1 << 20:
            return False
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError):
        return True  # unreadable YAML in a pipelines folder is worth reporting
    return isinstance(data, dict) and "steps" in data
