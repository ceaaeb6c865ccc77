"""The README's code blocks are run (against a live server where they need one) and the generated
reference docs are current, so neither can drift from the code."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()
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
