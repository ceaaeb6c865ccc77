"""Helpers of the deploy checks: paths of the real tools (installed by deploy/tools/install.sh, which
`make setup` runs), and `helm template` of the chart for every values profile."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
CHART = DEPLOY / "helm" / "sie"
TOOLS = DEPLOY / ".tools"
HERE = Path(__file__).resolve().parent
NAMESPACE = "sie-test"
RELEASE = "sie"

# Profile name -> values files, in the order `helm -f` layers them.
PROFILES: dict[str, list[Path]] = {
    "default": [],
    "cpu": [CHART / "values-cpu.yaml"],
    "gpu": [CHART / "values-gpu.yaml"],
    "gke": [CHART / "values-gpu.yaml", CHART / "values-gke.yaml"],
    "eks": [CHART / "values-gpu.yaml", CHART / "values-eks.yaml"],
    "all-features": [HERE / "values-all-features.yaml"],
}


def tool(name: str) -> str:
    """Absolute path of a deploy tool, or a failure that says how to install it (never a skip)."""
    candidates = {
        "helm": TOOLS / "bin" / "helm",
        "checkov": TOOLS / "checkov" / "bin" / "checkov",
        "hadolint": Path(sys.executable).parent / "hadolint",
    }
    path = candidates.get(name)
    found = str(path) if path and path.exists() else shutil.which(name)
    if not found:
        pytest.fail(f"{name} is not installed: run `bash deploy/tools/install.sh` (make setup does)")
    return found


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=kw.pop("timeout", 300), **kw)


def helm_template(values: list[Path], *extra: str) -> subprocess.CompletedProcess:
    args = [tool("helm"), "template", RELEASE, str(CHART), "--namespace", NAMESPACE]
    for v in values:
        args += ["-f", str(v)]
    return run([*args, *extra])


def render(values: list[Path], *extra: str) -> list[dict]:
    out = helm_template(values, *extra)
    assert out.returncode == 0, out.stderr
    return [d for d in yaml.safe_load_all(out.stdout) if d]


def of_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d.get("kind") == kind]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 90) -> None:
    """Poll url until it answers 200; fail with the process log if it exits or never answers."""
    import time

    import httpx

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} not ready after {timeout}s:\n{log.read_text()[-4000:]}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
