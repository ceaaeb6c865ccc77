"""Superlinked's SIE SDK (`sie-sdk`) and its integration packages (tests/superlinked/requirements.txt, in their own
venv .venv-sie-sdk: the SDK needs Python >= 3.12) against a live `sie serve` on loopback, started from the main
venv (SIE_BIN, set by the Makefile). The models' cards and tiny weights are written by the main venv's Python
(build_catalog.py: this venv has no torch). Every test is a row of the README's compatibility table
(`@pytest.mark.compat`, recorded by tests/compat_results.py; `--compat-out FILE`).
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
from pathlib import Path

import pytest
from compat_results import (  # noqa: F401 (pytest finds the hooks by name here)
    pytest_addoption,
    pytest_configure,
    pytest_runtest_makereport,
    pytest_sessionfinish,
)
from sdk_settings import KEY, MINILM
from servers import SIE, Server

HERE = Path(__file__).resolve().parent
SKIP = ("Superlinked's sie-sdk needs Python >= 3.12 and runs in its own venv, .venv-sie-sdk, which `make sie-sdk` "
        "builds from pyenv's 3.12 (not found on this machine, or not built): run `make test`")


def pytest_collection_modifyitems(config, items):
    if importlib.util.find_spec("sie_sdk") is None:   # the main venv, or a machine without Python 3.12
        skip = pytest.mark.skip(reason=SKIP)
        for item in items:
            if "tests/superlinked/" in str(item.path).replace("\\", "/"):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def catalog(tmp_path_factory) -> Path:
    """The cards (and tiny weights) build_catalog.py writes, with the Python of the server's venv."""
    python = str(Path(SIE).parent / "python")
    folder = tmp_path_factory.mktemp("sie-sdk-models")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(HERE.parent.parent)}
    done = subprocess.run([python, str(HERE / "build_catalog.py"), str(folder)], env=env, capture_output=True,
                          text=True)
    assert done.returncode == 0, f"build_catalog.py failed:\n{done.stdout}\n{done.stderr}"
    return Path(done.stdout.strip().splitlines()[-1])


@pytest.fixture(scope="session")
def server(tmp_path_factory, catalog):
    s = Server({"SIE_CATALOG_DIRS": str(catalog), "SIE_CPU_PRECISION": "fp32", "SIE_THREADS": "1",
                "SIE_API_KEYS": KEY, "SIE_TEST_LOG_DIR": str(tmp_path_factory.mktemp("sie-sdk-logs"))},
               ("--preload", MINILM))
    yield s
    s.stop()


@pytest.fixture(scope="session")
def url(server) -> str:
    return server.url


@pytest.fixture(scope="session")
def http(server):
    """sie's native JSON routes (no SDK header): the reference each SDK answer is compared with."""
    with server.client() as c:
        yield c


@pytest.fixture(scope="session")
def client(url):
    from sie_sdk import SIEClient

    with SIEClient(url, api_key=KEY, timeout_s=300) as c:  # a loaded 2-core machine: first loads are slow
        yield c

