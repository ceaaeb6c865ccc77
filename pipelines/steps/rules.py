"""Where a step may stand in a pipeline, declared on its class and checked by the spec for every step alike:

    class RerankStep(QueryStep):
        rules = (Once("only one rerank step per query pipeline"),
                 After(named("search"), "rerank works on search results: put it after steps[{other}]"))

A rule names other steps only through a selector (`named(...)` for a step of the same registry, or a trait
every step declares: `uses_model`, `makes_vectors`), so code outside the step registry never compares step
names. Messages are templates: {name} is the step's name, {first} the index of the first step of its kind,
{other} / {other_name} the index and name of the step the rule compares it with. A problem points at the
step (`steps[i].<name>`), or at `steps` for a step the pipeline lacks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

from pipelines.steps.base import Step, StepConfig


class Placed(Protocol):
    """A validated step at its position (pipelines.spec.StepSpec)."""

    @property
    def name(self) -> str: ...
    @property
    def config(self) -> StepConfig: ...
    @property
    def index(self) -> int: ...
    @property
    def step(self) -> type[Step]: ...


Selector = Callable[[Placed], bool]
Found = tuple[tuple[Any, ...], str]   # (key path, message)


def named(name: str) -> Selector:
    """Steps of this name (a name of the same registry as the declaring step)."""
    return lambda s: s.name == name


def uses_model(s: Placed) -> bool:
    return s.step.uses_model


def makes_vectors(s: Placed) -> bool:
    return bool(s.config.vector_outputs())


class Rule:
    #: A rule about what the pipeline holds: a step that failed validation might be the one it looks for,
    #: so it is only checked once every step validated (it would report a false absence otherwise).
    presence: ClassVar[bool] = False

    def check(self, step: Placed, steps: list[Placed]) -> Iterator[Found]:
        """Problems of `step` (a step declaring this rule) at its position among `steps`."""
        return iter(())

    def check_pipeline(self, declared_by: type[Step], steps: list[Placed]) -> Iterator[Found]:
        """Problems of the pipeline as a whole (checked whether or not it holds the declaring step)."""
        return iter(())


def _path(step: Placed) -> tuple[Any, ...]:
    return ("steps", step.index, step.name)


def _first(steps: list[Placed], wanted: Selector, besides: Placed) -> Placed | None:
    return next((s for s in steps if s is not besides and wanted(s)), None)


@dataclass(frozen=True)
class Once(Rule):
    """At most one step of this kind per pipeline."""

    message: str

    def check(self, step: Placed, steps: list[Placed]) -> Iterator[Found]:
        first = next(s for s in steps if s.step is step.step)
        if first is not step:
            yield _path(step), self.message.format(name=step.name, first=first.index)


@dataclass(frozen=True)
class Before(Rule):
    """The step comes before the first step `other` selects (when there is one)."""

    other: Selector
    message: str

    def check(self, step: Placed, steps: list[Placed]) -> Iterator[Found]:
        other = _first(steps, self.other, step)
        if other is not None and other.index < step.index:
            yield _path(step), self.message.format(name=step.name, other=other.index, other_name=other.name)


@dataclass(frozen=True)
class After(Rule):
    """The step comes after the first step `other` selects (when there is one)."""

    other: Selector
    message: str

    def check(self, step: Placed, steps: list[Placed]) -> Iterator[Found]:
        other = _first(steps, self.other, step)
        if other is not None and step.index < other.index:
            yield _path(step), self.message.format(name=step.name, other=other.index, other_name=other.name)


@dataclass(frozen=True)
class NeedsBefore(Rule):
    """Some step `other` selects comes before this one (e.g. one that makes the vector it searches with)."""

    other: Selector
    message: str
    presence: ClassVar[bool] = True

    def check(self, step: Placed, steps: list[Placed]) -> Iterator[Found]:
        if not any(s.index < step.index and self.other(s) for s in steps):
            yield _path(step), self.message.format(name=step.name)


@dataclass(frozen=True)
class Required(Rule):
    """A pipeline of this step's kind holds one."""

    message: str
    presence: ClassVar[bool] = True

    def check_pipeline(self, declared_by: type[Step], steps: list[Placed]) -> Iterator[Found]:
        if not any(s.step is declared_by for s in steps):
            yield ("steps",), self.message.format(name=declared_by.name)


def placement_problems(steps: list[Placed], registered: Iterable[type[Step]], complete: bool) -> Iterator[Found]:
    """What the rules of `steps` (and of every `registered` step class, for the pipeline-wide ones) find.
    `complete`: every step of the file validated; presence rules wait for that."""
    for step in steps:
        for rule in step.step.rules:
            if complete or not rule.presence:
                yield from rule.check(step, steps)
    if complete:
        for cls in registered:
            for rule in cls.rules:
                yield from rule.check_pipeline(cls, steps)
