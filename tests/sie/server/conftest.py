"""Live servers for the HTTP tests: `sie serve` in a subprocess on a free loopback port, with a
catalog of tiny random-weight models (plus the bundled MiniLM), a broken card and corrupt weights."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx
import pytest

SIE = str(Path(sys.executable).parent / "sie")
TINY = ("tiny/a", "tiny/b", "tiny/c")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_card(name: str, folder: Path, dims: int = 64, extra: str = "") -> str:
    return textwrap.dedent(f"""
        name: {name}
        source: {{path: "{folder}"}}
        architecture: bert
        capabilities:
          encode: {{dense: {{dims: {dims}}}}}
        pooling: mean
        max_tokens: 64
        token_budget: 256
        precision: {{cpu: fp32}}
    """) + extra


@pytest.fixture(scope="session")
def tiny_catalog(tmp_path_factory, tiny_models) -> Path:
    d = tmp_path_factory.mktemp("catalog")
    for seed, name in enumerate(TINY):
        (d / f"{name.replace('/', '-')}.yaml").write_text(tiny_card(name, tiny_models("bert", seed=seed + 1)))
    corrupt = tmp_path_factory.mktemp("corrupt")
    shutil.copytree(tiny_models("bert"), corrupt, dirs_exist_ok=True)
    (corrupt / "model.safetensors").write_bytes(b"\0" * 64)
    (d / "corrupt.yaml").write_text(tiny_card("tiny/corrupt", corrupt))
    (d / "broken.yaml").write_text(tiny_card("tiny/broken", corrupt).replace("pooling: mean", "pooling: maximum"))
    return d


class Server:
    def __init__(self, env: dict[str, str], args: tuple[str, ...] = ()) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", **env}
        self.log = open(Path(env.get("SIE_TEST_LOG_DIR", "/tmp")) / f"sie-serve-{self.port}.log", "w+")
        self.proc = subprocess.Popen([SIE, "serve", "--port", str(self.port), "--log-level", "warning", *args],
                                     env=full_env, stdout=self.log, stderr=subprocess.STDOUT)
        self.headers = {"authorization": f"Bearer {env['SIE_API_KEYS'].split(',')[0]}"} \
            if env.get("SIE_API_KEYS") else {}
        self.wait_ready()

    def wait_ready(self, timeout: float = 90) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sie serve exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"sie serve not ready after {timeout}s:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def client(self, **kw) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers=self.headers, timeout=60, **kw)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode


@pytest.fixture(scope="session")
def server_factory(tiny_catalog, tmp_path_factory):
    started: list[Server] = []
    logs = tmp_path_factory.mktemp("logs")

    def start(env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> Server:
        base = {"SIE_CATALOG_DIRS": str(tiny_catalog), "SIE_CPU_PRECISION": "fp32", "SIE_THREADS": "1",
                "SIE_TEST_LOG_DIR": str(logs)}
        server = Server({**base, **(env or {})}, args)
        started.append(server)
        return server

    yield start
    for s in started:
        s.stop()


@pytest.fixture(scope="session")
def server(server_factory) -> Server:
    """The shared server: API keys on, a small queue, MiniLM preloaded."""
    return server_factory({"SIE_API_KEYS": "test-key,second-key", "SIE_ADMIN_KEY": "admin-key",
                           "SIE_MAX_ITEMS": "64", "SIE_MAX_CHARS": "2000", "SIE_MAX_BODY_BYTES": "200000"},
                          ("--preload", "all-MiniLM-L6-v2"))
