"""One in-process engine with the bundled MiniLM weights, shared by the embedding-function tests, and a
real Chroma server (the pip package's `chroma run`) to check a stored function config survives it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from sie import Engine
from sie.integrations.engine import set_default_engine

DOCS = ["The cat sat on the mat by the window.",
        "Stock markets fell sharply after the central bank raised interest rates.",
        "Whisk the eggs and sugar, then fold in the flour for a light sponge cake."]


@pytest.fixture(scope="session")
def docs() -> list[str]:
    return list(DOCS)


@pytest.fixture(scope="session")
def engine():
    engine = Engine()
    set_default_engine(engine)  # what functions rebuilt from stored configs will use
    yield engine
    set_default_engine(None)
    engine.close()


@pytest.fixture(scope="session")
def chroma_port(tmp_path_factory):
    """Port of a `chroma run` server on loopback, stopped at the end of the session."""
    cli = Path(sys.executable).parent / "chroma"
    cli = str(cli) if cli.exists() else shutil.which("chroma")
    if cli is None:
        pytest.skip("the chroma CLI (pip package chromadb) is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    folder = tmp_path_factory.mktemp("chroma-ef-server")
    proc = subprocess.Popen([cli, "run", "--path", str(folder), "--host", "127.0.0.1", "--port", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None:
                    raise RuntimeError(f"chroma run exited with {proc.returncode}") from None
                time.sleep(0.1)
        else:
            raise RuntimeError("chroma run did not answer its heartbeat within 30 s")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=10)
