"""Every mistake in a pipeline file is reported as `file:line:col key.path: what was expected`, never as a
traceback. Each file in broken/ states on its first line the exact message it must produce (files marked
`# via: plan` hold mistakes only `sie plan` can see: what a model can do)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from servers import SIE

from pipelines.errors import SpecError
from pipelines.models import ModelDirectory
from pipelines.plan import check_models
from pipelines.spec import load_pipeline

BROKEN = sorted((Path(__file__).parent / "broken").glob("*.yaml"))
FORMAT = re.compile(r"^(?P<file>[\w.-]+\.yaml):(?P<line>\d+):(?P<col>\d+) (?P<path>\(\w+ ?\w*\)|\S+): (?P<message>.+)$")


def promised(path: Path) -> tuple[str, bool]:
    lines = path.read_text().splitlines()
    assert lines[0].startswith("# expect: "), f"{path.name} must start with '# expect: <message>'"
    return f"{path.name}:{lines[0].removeprefix('# expect: ')}", len(lines) > 1 and lines[1].startswith("# via: plan")


def problems_of(path: Path, models: ModelDirectory) -> list[str]:
    try:
        p = load_pipeline(path, shown_as=path.name)
        found = check_models(p, models, capabilities=True)
    except SpecError as e:
        return [str(problem) for problem in e.problems]
    return [str(problem) for problem in found]


@pytest.fixture(scope="module")
def models(engine) -> ModelDirectory:
    return ModelDirectory.from_engine(engine)


def test_there_are_at_least_thirty_broken_files():
    assert len(BROKEN) >= 30


@pytest.mark.parametrize("path", BROKEN, ids=[p.stem for p in BROKEN])
def test_each_broken_file_produces_its_promised_message(path, models):
    expected, _ = promised(path)
    found = problems_of(path, models)
    assert found, f"{path.name} was accepted"
    assert found[0] == expected
    for problem in found:  # every further problem keeps the same shape
        assert FORMAT.match(problem), problem


def test_a_python_tag_runs_nothing(models, tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "p.yaml"
    path.write_text(f"name: x\nsteps:\n  - encode: !!python/object/apply:os.system ['touch {marker}']\n")
    assert "is not allowed" in problems_of(path, models)[0]
    assert not marker.exists()


def test_the_cli_prints_each_promise_without_a_traceback(cli_env):
    """`sie validate` over every file at once (`sie plan` for the capability mistakes): exit code 2, one
    `error` line per problem, each file's promised message among them."""
    by_plan = [p for p in BROKEN if promised(p)[1]]
    validate = subprocess.run([SIE, "validate", *[p.name for p in BROKEN if p not in by_plan]], cwd=BROKEN[0].parent,
                              env=cli_env, capture_output=True, text=True, timeout=120)
    assert validate.returncode == 2
    assert "Traceback" not in validate.stderr + validate.stdout
    lines = validate.stderr.splitlines()
    assert all(line.startswith("error ") for line in lines)
    for path in BROKEN:
        if path not in by_plan:
            assert f"error {promised(path)[0]}" in lines, path.name
    for path in by_plan:
        plan = subprocess.run([SIE, "plan", path.name], cwd=path.parent, env=cli_env, capture_output=True, text=True,
                              timeout=120)
        assert plan.returncode == 2 and "Traceback" not in plan.stderr
        assert f"error {promised(path)[0]}" in plan.stderr.splitlines(), plan.stderr
