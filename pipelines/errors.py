"""The pipelines room's one error type, a `SieError` so the server maps its code to the same envelope.

`SpecError` carries every problem found in a pipeline file, each as `file:line:col key.path: what was
expected`; the CLI prints them one per line and the REST API returns the first as its message.
"""

from __future__ import annotations

from dataclasses import dataclass

from sie.errors import SieError


class PipelineError(SieError):
    """A pipeline cannot be built or run as asked (codes: invalid_pipeline, pipeline_not_found, ...)."""

    code = "pipeline_error"


@dataclass(frozen=True, slots=True)
class Problem:
    file: str
    line: int
    col: int
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col} {self.path}: {self.message}"


class SpecError(PipelineError):
    code = "invalid_pipeline"

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.line, p.col))
        first = self.problems[0]
        super().__init__("\n".join(str(p) for p in self.problems), field=first.path)


class PipelineNotFound(PipelineError):
    code = "pipeline_not_found"


class RunNotFound(PipelineError):
    code = "run_not_found"


class SourceError(PipelineError):
    """A source cannot be read (outside its root, too large, malformed rows)."""

    code = "source_error"
