"""Real servers on loopback for tests, shared across rooms: a `chroma run` process that can be stopped
and started again on the same port and data (to test a sink that goes away), and `sie serve`."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import httpx

# The client-library tests run in their own venv (.venv-clients) and start the main venv's server: SIE_BIN.
SIE = os.environ.get("SIE_BIN") or str(Path(sys.executable).parent / "sie")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def chroma_cli() -> str | None:
    beside = Path(sys.executable).parent / "chroma"
    return str(beside) if beside.exists() else shutil.which("chroma")


class ChromaProcess:
    """`chroma run --path folder/data` on a fixed loopback port; `stop()` then `start()` keeps the data."""

    def __init__(self, folder: Path, port: int | None = None) -> None:
        cli = chroma_cli()
        if cli is None:
            raise RuntimeError("the chroma CLI (pip package chromadb) is not installed")
        self.cli, self.folder = cli, folder
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log_path = folder / "server.log"

    def start(self, timeout: float = 30) -> ChromaProcess:
        self.folder.mkdir(parents=True, exist_ok=True)
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([self.cli, "run", "--path", str(self.folder / "data"), "--host", "127.0.0.1",
                                      "--port", str(self.port)], stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"chroma run exited with {self.proc.returncode}: {self.log_path.read_text()}")
            try:
                with urllib.request.urlopen(f"{self.url}/api/v2/heartbeat", timeout=1) as response:
                    if response.status == 200:
                        return self
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"chroma run did not answer its heartbeat within {timeout} s: "
                                   f"{self.log_path.read_text()}")
            time.sleep(0.1)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None


class Server:
    """`sie serve` in a subprocess on a loopback port (a free one unless given: a restart reuses its
    predecessor's), with extra `args`, e.g. --pipelines DIR."""

    def __init__(self, env: dict[str, str], args: tuple[str, ...] = (), port: int | None = None) -> None:
        self.port = port or free_port()
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
