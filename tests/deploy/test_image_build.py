"""deploy/docker/Dockerfile.cpu built for real with buildah (no Docker engine here) and run with podman: the
image serves an encode through a loopback port, with the same vector as this checkout's engine.

No base image can be pulled, so the Dockerfile's base (PYTHON_IMAGE) is replaced by one built from Debian
packages: `debootstrap --variant=minbase bookworm` (Python 3.11, as the official image) imported with
`buildah from scratch`. Storage is vfs and isolation chroot (overlay and crun do not work in this sandbox);
podman runs it with runc on the host network.

It builds an image with torch: minutes, not seconds (measured on the 2-core CI machine kind: debootstrap
~5 min once, the build 622 s, see deploy/README.md), so it is not part of `make test`: `make test-image` runs
it (SIE_IMAGE_TEST=1). Skipped, with the reason, where buildah, podman or root are missing.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from deploy_helpers import DEPLOY, ROOT, free_port

BASE = "localhost/sie-test-python:3.11-bookworm"
IMAGE = "localhost/sie:test-cpu"
STORAGE = ["--storage-driver", "vfs"]
HOST_CA = Path("/etc/ssl/certs/ca-certificates.crt")  # the host's trust (TLS-intercepting proxies included)

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(os.environ.get("SIE_IMAGE_TEST") != "1",
                       reason="builds the CPU image with torch (minutes): `make test-image` (SIE_IMAGE_TEST=1)"),
    pytest.mark.skipif(not all(shutil.which(t) for t in ("buildah", "podman", "debootstrap", "runc")),
                       reason="needs buildah, podman, runc and debootstrap (apt-get install buildah podman runc "
                              "debootstrap)"),
    pytest.mark.skipif(os.geteuid() != 0, reason="debootstrap and chroot-isolated builds need root here"),
]


def sh(*cmd: str, timeout: float = 1800) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, f"{' '.join(cmd)}\n{out.stdout[-3000:]}\n{out.stderr[-3000:]}"
    return out


def image_exists(name: str) -> bool:
    inspect = subprocess.run(["buildah", *STORAGE, "inspect", "--type", "image", name], capture_output=True)
    return inspect.returncode == 0


@pytest.fixture(scope="module")
def base_image(tmp_path_factory) -> str:
    """The Debian bookworm stand-in for python:3.11-slim-bookworm (kept in storage: later runs reuse it)."""
    if image_exists(BASE):
        return BASE
    rootfs = tmp_path_factory.mktemp("rootfs") / "bookworm"
    sh("debootstrap", "--variant=minbase", "--include=python3,python3-venv,python-is-python3,ca-certificates",
       "bookworm", str(rootfs), "http://deb.debian.org/debian")
    ctr = sh("buildah", *STORAGE, "from", "scratch").stdout.strip()
    try:
        mount = sh("buildah", *STORAGE, "mount", ctr).stdout.strip()
        sh("cp", "-a", f"{rootfs}/.", f"{mount}/")
        sh("buildah", *STORAGE, "umount", ctr)
        sh("buildah", *STORAGE, "config", "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
           ctr)
        sh("buildah", *STORAGE, "commit", "-q", ctr, BASE)
    finally:
        subprocess.run(["buildah", *STORAGE, "rm", ctr], capture_output=True)
    return BASE


@pytest.fixture(scope="module")
def cpu_image(base_image, tmp_path_factory) -> str:
    """`buildah bud` of Dockerfile.cpu with its own build args, the base replaced. pip inside the build trusts
    the host's CA bundle; where the host has a local wheel of torch's CPU build (PIP_FIND_LINKS), pip finds
    it there, since download.pytorch.org (the Dockerfile's index) may be unreachable."""
    conf = tmp_path_factory.mktemp("pip") / "pip.conf"
    lines, mounts, args = ["[global]"], [], ["--build-arg", f"PYTHON_IMAGE={base_image}"]
    if HOST_CA.exists():
        lines.append(f"cert = {HOST_CA}")
        mounts += ["-v", f"{HOST_CA}:{HOST_CA}:ro"]
    links = os.environ.get("PIP_FIND_LINKS")
    if links and any(Path(links).glob("torch-*+cpu-*.whl")):
        lines.append(f"find-links = {links}")
        mounts += ["-v", f"{links}:{links}:ro"]
        args += ["--build-arg", "TORCH_INDEX_URL=https://pypi.org/simple"]  # the +cpu wheel sorts above PyPI's
    conf.write_text("\n".join(lines) + "\n")
    start = time.monotonic()
    sh("buildah", *STORAGE, "bud", "--isolation", "chroot", "--layers=false",
       "-f", str(DEPLOY / "docker" / "Dockerfile.cpu"),
       "--ignorefile", str(DEPLOY / "docker" / "Dockerfile.cpu.dockerignore"),
       *args, "-v", f"{conf}:/etc/pip.conf:ro", *mounts, "-t", IMAGE, str(ROOT), timeout=3600)
    print(f"built {IMAGE} in {time.monotonic() - start:.0f}s", file=sys.stderr)
    return IMAGE


def test_the_cpu_image_serves_an_encode_on_a_loopback_port(cpu_image):
    port = free_port()
    name = f"sie-image-test-{port}"
    run = subprocess.run(
        ["podman", *STORAGE, "--runtime", "runc", "run", "-d", "--rm", "--name", name, "--network", "host",
         "--ulimit", "nofile=20000:20000", "--ulimit", "nproc=4096:4096", "-e", "HF_HUB_OFFLINE=1",
         cpu_image, "serve", "--host", "127.0.0.1", "--port", str(port), "--preload", "all-MiniLM-L6-v2"],
        capture_output=True, text=True, timeout=120)
    if run.returncode != 0:
        pytest.skip(f"this sandbox cannot run a container (podman --runtime runc): {run.stderr.strip()[-500:]}")
    try:
        deadline, ready = time.monotonic() + 180, False
        while time.monotonic() < deadline and not ready:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200
            except httpx.TransportError:
                time.sleep(1)
        logs = subprocess.run(["podman", *STORAGE, "logs", name], capture_output=True, text=True).stdout
        assert ready, f"the container never became ready:\n{logs[-3000:]}"
        r = httpx.post(f"http://127.0.0.1:{port}/v1/embeddings", timeout=60,
                       json={"model": "all-MiniLM-L6-v2", "input": ["hello world"]})
        assert r.status_code == 200, r.text
        got = np.array(r.json()["data"][0]["embedding"])
    finally:
        subprocess.run(["podman", *STORAGE, "stop", "-t", "30", name], capture_output=True, timeout=60)
    want = _local_vector("hello world")
    assert got.shape == (384,)
    # Same code, same torch wheel, same CPU: the image answers as this checkout does.
    assert float(got @ want / np.linalg.norm(got) / np.linalg.norm(want)) > 0.999


def _local_vector(text: str) -> np.ndarray:
    out = subprocess.run([str(Path(sys.executable).parent / "sie"), "encode", "all-MiniLM-L6-v2", text],
                         capture_output=True, text=True, timeout=300,
                         env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)})
    assert out.returncode == 0, out.stderr
    return np.array(json.loads(out.stdout.splitlines()[0])["dense"])
