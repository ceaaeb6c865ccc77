"""Safe YAML with positions: every value and key of a pipeline file remembers its line and column, so a
mistake is reported as `file:line:col key.path: what was expected` instead of a traceback.

Only the plain YAML types are built (mappings, sequences, strings, numbers, booleans, null); any other
tag (`!!python/object`, custom `!tags`) is refused, so no key can import or run code. Aliases are
expanded with a bound on the number of nodes (a "billion laughs" file fails instead of eating memory).
Dates stay the strings they were written as.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from pipelines.errors import Problem, SpecError

MAX_FILE_BYTES = 1 << 20
MAX_NODES = 100_000
_TAG = "tag:yaml.org,2002:"
SCALAR_TAGS = {_TAG + t for t in ("str", "int", "float", "bool", "null")}
Path_ = tuple[str | int, ...]


def render_path(path: Sequence[str | int]) -> str:
    """('steps', 2, 'encode', 'model') -> 'steps[2].encode.model'."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "(top level)"


@dataclass
class Located:
    """A parsed YAML document and where each part of it was written."""

    file: str
    data: Any
    values: dict[Path_, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path_, tuple[int, int]] = field(default_factory=dict)

    def position(self, path: Sequence[str | int], *, key: bool = False) -> tuple[int, int]:
        """1-based (line, col) of `path`, or of its nearest ancestor that was written down."""
        path = tuple(path)
        if key and path in self.keys:
            return self.keys[path]
        for n in range(len(path), -1, -1):
            if path[:n] in self.values:
                return self.values[path[:n]]
        return (1, 1)

    def problem(self, path: Sequence[str | int], message: str, *, key: bool = False) -> Problem:
        line, col = self.position(path, key=key)
        return Problem(self.file, line, col, render_path(path), message)


def load_text(text: str, file: str) -> Located:
    """Parse `text` (named `file` in messages). Raises SpecError for anything that is not plain YAML."""
    if len(text.encode("utf-8")) > MAX_FILE_BYTES:
        raise SpecError([Problem(file, 1, 1, "(file)", f"larger than the limit of {MAX_FILE_BYTES} bytes")])
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark or e.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        opened = e.context_mark if e.context and e.context_mark and e.context_mark is not mark else None
        where = f" (opened at {opened.line + 1}:{opened.column + 1})" if opened else ""
        reason = f"{e.context}{where}: {e.problem}" if e.context else str(e.problem)
        raise SpecError([Problem(file, line, col, "(syntax)", f"not valid YAML: {reason}")]) from None
    except yaml.YAMLError as e:
        raise SpecError([Problem(file, 1, 1, "(syntax)", f"not valid YAML: {e}")]) from None
    finally:
        loader.dispose()
    located = Located(file, None)
    if node is None:
        raise SpecError([Problem(file, 1, 1, "(top level)", "the file is empty; expected a mapping with "
                                                            "name, steps and sinks")])
    builder = _Builder(located, loader)
    located.data = builder.build(node, ())
    if builder.problems:
        raise SpecError(builder.problems)
    return located


def load_file(path: str | Path, shown_as: str | None = None) -> Located:
    path = Path(path)
    shown = shown_as or str(path)
    try:
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise SpecError([Problem(shown, 1, 1, "(file)", f"{size} bytes exceeds the limit of {MAX_FILE_BYTES}")])
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise SpecError([Problem(shown, 1, 1, "(file)", f"not UTF-8 text: {e.reason} at byte {e.start}")]) from None
    except OSError as e:
        raise SpecError([Problem(shown, 1, 1, "(file)", f"cannot read the file: {e.strerror or e}")]) from None
    return load_text(text, shown)


class _Builder:
    def __init__(self, located: Located, loader: yaml.SafeLoader) -> None:
        self.located, self.loader = located, loader
        self.problems: list[Problem] = []
        self.nodes = 0

    def _where(self, node: yaml.Node) -> tuple[int, int]:
        return node.start_mark.line + 1, node.start_mark.column + 1

    def _fail(self, node: yaml.Node, path: Path_, message: str) -> None:
        line, col = self._where(node)
        self.problems.append(Problem(self.located.file, line, col, render_path(path), message))

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.nodes += 1
        if self.nodes > MAX_NODES:
            if self.nodes == MAX_NODES + 1:
                self._fail(node, path[:1], f"more than {MAX_NODES} values (aliases expanding without bound?)")
            return None
        self.located.values.setdefault(path, self._where(node))
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            if node.tag != _TAG + "seq":
                self._fail(node, path, f"tag {node.tag!r} is not allowed; only plain YAML values (no code)")
                return None
            return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
        return self._scalar(node, path)

    def _scalar(self, node: yaml.ScalarNode, path: Path_) -> Any:
        if node.tag == _TAG + "timestamp":
            return node.value  # a date stays the text it was written as
        if node.tag not in SCALAR_TAGS:
            self._fail(node, path, f"tag {node.tag!r} is not allowed; only plain YAML values (no code)")
            return None
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as e:
            self._fail(node, path, f"cannot read this value: {getattr(e, 'problem', e)}")
            return None

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict[str, Any] | None:
        if node.tag != _TAG + "map":
            self._fail(node, path, f"tag {node.tag!r} is not allowed; only plain YAML values (no code)")
            return None
        try:
            self.loader.flatten_mapping(node)  # `<<: *anchor` merge keys
        except yaml.YAMLError as e:
            self._fail(node, path, f"cannot merge: {getattr(e, 'problem', e)}")
            return None
        out: dict[str, Any] = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag != _TAG + "str":
                shown = getattr(key_node, "value", "?")
                self._fail(key_node, (*path, str(shown)), f"keys must be plain strings, got {shown!r} "
                                                          f"({key_node.tag.rsplit(':', 1)[-1]})")
                continue
            key = key_node.value
            sub = (*path, key)
            if key in out:
                line, _ = self.located.keys[sub]
                self._fail(key_node, sub, f"duplicate key (first given on line {line})")
                continue
            self.located.keys[sub] = self._where(key_node)
            out[key] = self.build(value_node, sub)
        return out
