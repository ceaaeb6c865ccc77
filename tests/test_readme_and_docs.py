"""The README's code blocks are run (against a live server where they need one), the generated reference docs
are current, and every file and code name the architecture page cites exists, so none can drift from the code."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
ARCHITECTURE = ROOT / "docs" / "architecture.md"
SIE = str(Path(sys.executable).parent / "sie")


def blocks(lang: str) -> list[str]:
    """Fenced blocks of `lang`, except those right after a `<!-- not run: why -->` comment."""
    out = []
    for m in re.finditer(rf"(<!-- not run:[^>]*-->\s*)?```{lang}\n(.*?)```", README, re.S):
        if not m.group(1):
            out.append(m.group(2))
    return out


def commands(block: str) -> list[str]:
    joined = block.replace("\\\n", " ")
    return [line.split("#")[0].strip() if not line.strip().startswith("curl") else line.strip()
            for line in joined.splitlines() if line.strip() and not line.strip().startswith("#")]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from servers import Server

    s = Server({"SIE_CPU_PRECISION": "fp32", "SIE_THREADS": "1",
                "SIE_TEST_LOG_DIR": str(tmp_path_factory.mktemp("readme-logs"))}, ("--preload", "all-MiniLM-L6-v2"))
    yield s
    s.stop()


def test_every_curl_in_the_readme_answers_without_an_error(server):
    curls = [c for b in blocks("bash") for c in commands(b) if c.startswith("curl ")]
    assert len(curls) >= 5
    for cmd in curls:
        cmd = cmd.replace("localhost:8080", server.url.removeprefix("http://"))
        out = subprocess.run(["bash", "-c", cmd + " -w '\\n%{http_code}'"], capture_output=True, text=True,
                             timeout=60)
        body, _, code = out.stdout.rpartition("\n")
        assert out.returncode == 0 and code == "200", (cmd, out.stdout, out.stderr)
        assert "error" not in json.loads(body), (cmd, body)


def test_every_other_readme_shell_command_is_a_real_command():
    """`sie ...` lines must be commands the CLI has; `make` targets must exist."""
    makefile = (ROOT / "Makefile").read_text()
    for cmd in (c for b in blocks("bash") for c in commands(b)):
        if cmd.startswith("make "):
            assert re.search(rf"^{cmd.split()[1]}:", makefile, re.M), cmd
        elif cmd.startswith("sie "):
            sub = cmd.split()[1]
            out = subprocess.run([SIE, sub, "--help"], capture_output=True, text=True, timeout=60)
            assert out.returncode == 0, (cmd, out.stderr)


def test_the_python_blocks_run(server, tmp_path):
    for i, block in enumerate(blocks("python")):
        script = tmp_path / f"block{i}.py"
        script.write_text(block.replace("http://127.0.0.1:8080", server.url))
        out = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                             env={"HF_HUB_OFFLINE": "1", "SIE_CPU_PRECISION": "fp32", "PATH": "/usr/bin:/bin"})
        assert out.returncode == 0, (block, out.stderr)
        if "print(" in block:
            assert "(384,) 0 sports" in out.stdout, out.stdout


def test_the_pipeline_yaml_validates(tmp_path):
    (yaml_block,) = blocks("yaml")
    paths = []
    for i, doc in enumerate(yaml_block.split("\n---\n")):
        path = tmp_path / f"p{i}.yaml"
        path.write_text(doc)
        paths.append(str(path))
    out = subprocess.run([SIE, "validate", *paths], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr


def test_generated_docs_are_current():
    out = subprocess.run([sys.executable, str(ROOT / "docs" / "generate.py"), "--check"], capture_output=True,
                         text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr


def test_the_benchmark_table_is_the_saved_results():
    """The README's figures are bench/plot.py's rendering of bench/results/*.json, not retyped numbers."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("bench_plot", ROOT / "bench" / "plot.py")
    plot = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(plot)
    assert plot.table() in README
    assert (ROOT / "bench" / "results" / "benchmarks.png").exists()


def test_the_compatibility_table_is_the_client_tests_results():
    """The README's client table is docs/compat_table.py's rendering of tests/clients/results.json, which the
    client-library tests write in `make test` (before this suite runs), not a hand-kept list."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("compat_table", ROOT / "docs" / "compat_table.py")
    compat = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(compat)
    assert compat.table() in README
    assert len(compat.table().splitlines()) > 2


# -- the architecture page: every file and code name it cites exists ---------------------------------------
CODE_ROOTS = ("sie", "connectors", "pipelines", "tests", "bench", "docs", "examples")
IDENTIFIER = re.compile(r"[A-Za-z_]\w*")


def code_spans(text: str) -> list[str]:
    """Inline `code` of a markdown page, outside fenced blocks."""
    return re.findall(r"`([^`\n]+)`", re.sub(r"```.*?```", "", text, flags=re.S))


def links(text: str) -> list[str]:
    """Relative link targets of a markdown page (anchors, URLs and code left out)."""
    prose = re.sub(r"`[^`\n]+`", "", re.sub(r"```.*?```", "", text, flags=re.S))
    return [t.split("#")[0] for t in re.findall(r"\]\(([^)\s]+)\)", prose) if not re.match(r"[a-z]+:|#", t)]


def file_citation(span: str) -> tuple[str, str | None] | None:
    """(path, "Name.attr" or None) when the span is `path` or `path:Name.attr` and the path starts at a top-level
    entry of the repository (a bare word such as `sie` is prose, not a citation), else None."""
    path, _, names = span.partition(":")
    first = path.split("/")[0]
    if not re.fullmatch(r"[\w.<>{},/-]+", path) or not (ROOT / first).exists():
        return None
    if path == first and "." not in path:
        return None
    return path, names or None


def resolve_path(path: str) -> list[Path]:
    """The files or folders `path` names, [] when any alternative names none. `{a,b}`: each alternative;
    `<x>`: a placeholder that any name fills (at least one must exist)."""
    brace = re.search(r"\{([^}]*)\}", path)
    if brace:
        found = [resolve_path(path.replace(brace.group(0), alt, 1)) for alt in brace.group(1).split(",")]
        return [] if not all(found) else [f for group in found for f in group]
    pattern = re.sub(r"<[^>]+>", "*", path.rstrip("/"))
    if "*" in pattern:
        return sorted(ROOT.glob(pattern))
    return [ROOT / pattern] if (ROOT / pattern).exists() else []


def defined_names(tree: ast.Module) -> dict[str, set[str]]:
    """Names a module binds at its top level → the names bound in that class's body (empty for the rest)."""
    out: dict[str, set[str]] = {}
    for node in tree.body:
        if isinstance(node, ast.ClassDef):
            out[node.name] = {n for child in node.body for n in _bound(child)}
        else:
            out.update((n, set()) for n in _bound(node))
    return out


def _bound(node: ast.stmt) -> list[str]:
    if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
        return [node.name]
    if isinstance(node, ast.Assign):
        return [t.id for t in node.targets if isinstance(t, ast.Name)]
    if isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
        return [node.target.id]
    if isinstance(node, (ast.Import, ast.ImportFrom)):
        return [(a.asname or a.name).split(".")[0] for a in node.names]
    return []


def module_file(dotted: str) -> Path | None:
    path = ROOT.joinpath(*dotted.split("."))
    return next((p for p in (path.with_suffix(".py"), path / "__init__.py") if p.is_file()), None)


def dotted_exists(dotted: str) -> bool:
    """`sie.plugins` (a module or package) or `connectors.open_sink` (a name a module binds)."""
    if module_file(dotted):
        return True
    module, _, name = dotted.rpartition(".")
    file = module_file(module)
    return file is not None and name in defined_names(ast.parse(file.read_text()))


def code_names() -> set[str]:
    """Every name the code defines or takes: functions, classes, assigned names and attributes, parameters."""
    names: set[str] = set()
    for root in CODE_ROOTS:
        for file in (ROOT / root).rglob("*.py"):
            for node in ast.walk(ast.parse(file.read_text())):
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                    names.add(node.name)
                elif isinstance(node, ast.arg):
                    names.add(node.arg)
                elif isinstance(node, (ast.Name, ast.Attribute)) and isinstance(node.ctx, ast.Store):
                    names.add(node.id if isinstance(node, ast.Name) else node.attr)
                elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("SIE_"):
                    names.add(node.value)  # an environment variable the code reads by its name
    return names


def _undefined(name: str, known: set[str]) -> bool:
    """`SIE_<FIELD>` is the variable of the setting `<field>` (sie.config.Settings.load)."""
    return name not in known and not (name.startswith("SIE_") and name[4:].lower() in known)


def architecture_problems(text: str) -> list[str]:
    """What the page cites that the repository lacks: files and folders, `file.py:Name.attr` definitions,
    dotted module names (`sie.plugins`), and code-like names (`Class.attr`, `_private`, `ALL_CAPS`,
    `snake_case`) that nothing in the code defines."""
    problems = [f"link {t}" for t in links(text) if not (ARCHITECTURE.parent / t).exists()]
    known = code_names()
    for span in code_spans(text):
        cited = file_citation(span)
        if cited is not None:
            path, names = cited
            files = resolve_path(path)
            if not files:
                problems.append(f"`{span}`: no such file or folder")
            elif names is not None:
                top, _, attr = names.partition(".")
                defined = defined_names(ast.parse(files[0].read_text()))
                if top not in defined or (attr and attr not in defined[top]):
                    problems.append(f"`{span}`: {path} defines no {names}")
        elif re.fullmatch(r"(sie|connectors|pipelines)(\.\w+)+", span):
            if not dotted_exists(span):
                problems.append(f"`{span}`: no such module or module attribute")
        elif re.fullmatch(r"[A-Z]\w*\.\w+|_\w+|[A-Z][A-Z0-9]*(_[A-Z0-9]+)+|[a-z]+(_[a-z0-9]+)+", span):
            problems += [f"`{span}`: the code defines no {name}" for name in IDENTIFIER.findall(span)
                         if _undefined(name, known)]
    return problems


def test_the_readme_links_the_architecture_page_in_the_repository():
    assert "](docs/architecture.md)" in README and "../shared/" not in README
    assert [t for t in links(README) if not (ROOT / t).exists()] == []


def test_everything_the_architecture_page_cites_exists():
    text = ARCHITECTURE.read_text()
    assert architecture_problems(text) == []
    cited = [c for c in map(file_citation, code_spans(text)) if c is not None]
    assert len(cited) > 100 and sum(names is not None for _, names in cited) > 40  # the page cites code


def test_the_citation_check_finds_what_does_not_exist():
    page = ("`sie/runtime/batcher.py:TokenBudgetBatcher.nope` `sie/models/<family>.pyx` `sie/runtime/engine.py:Gone` "
            "`pipelines/steps/nothing.py` `sie.plugins.Missing` `Engine._vanished` `NO_SUCH_TABLE` `SIE_NO_SUCH` "
            "`[a](in-code.md)` [b](no/such/file.md)")
    assert architecture_problems(page) == [
        "link no/such/file.md",
        "`sie/runtime/batcher.py:TokenBudgetBatcher.nope`: sie/runtime/batcher.py defines no TokenBudgetBatcher.nope",
        "`sie/models/<family>.pyx`: no such file or folder",
        "`sie/runtime/engine.py:Gone`: sie/runtime/engine.py defines no Gone",
        "`pipelines/steps/nothing.py`: no such file or folder",
        "`sie.plugins.Missing`: no such module or module attribute",
        "`Engine._vanished`: the code defines no _vanished",
        "`NO_SUCH_TABLE`: the code defines no NO_SUCH_TABLE",
        "`SIE_NO_SUCH`: the code defines no SIE_NO_SUCH",
    ]
    assert architecture_problems("`sie/runtime/batcher.py:TokenBudgetBatcher._cut_batch` `sie/catalog/<model>.yaml` "
                                 "`deploy/terraform/{modules,examples}/` `sie.plugins` `connectors.open_sink` "
                                 "`SIE_MAX_ITEMS`") == []
    assert architecture_problems("`deploy/terraform/{modules,nothing}/`") == [
        "`deploy/terraform/{modules,nothing}/`: no such file or folder"]
