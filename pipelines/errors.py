"""The pipelines room's one error type, a `SieError` so the server maps it to the same envelope.

`SpecError` carries every problem found in a pipeline file, each as `file:line:col key.path: what was
expected`; the CLI prints them one per line and the REST API returns the first as its message.
"""

from __future__ import annotations

from dataclasses import dataclass

from sie.errors import SieError


class PipelineError(SieError):
    """A pipeline cannot be built or run as asked (codes: invalid_pipeline, pipeline_not_found, ...)."""

    code, status = "pipeline_error", 400


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
    code, status = "invalid_pipeline", 400

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.line, p.col))
        first = self.problems[0]
        super().__init__("\n".join(str(p) for p in self.problems), field=first.path)


class PipelineNotFound(PipelineError):
    code, status = "pipeline_not_found", 404


class RunNotFound(PipelineError):
    code, status = "run_not_found", 404


class SourceError(PipelineError):
    """A source cannot be read (outside its root, too large, malformed rows)."""

    code, status = "source_error", 400
