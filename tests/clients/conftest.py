"""The published client libraries (tests/clients/requirements.txt, in their own venv .venv-clients) against a
live `sie serve` on loopback, started from the main venv (SIE_BIN, set by the Makefile).

Every test is marked `@pytest.mark.compat(api, package, call)`: a row of the README's compatibility table
(tests/compat_results.py, whose hooks this conftest imports, records them; `--compat-out FILE`).
"""

from __future__ import annotations

import importlib.util
import os

import pytest
from client_settings import KEY, MINILM
from compat_reference import write_compat_cards
from compat_results import (  # noqa: F401 (pytest finds the hooks by name here)
    pytest_addoption,
    pytest_configure,
    pytest_runtest_makereport,
    pytest_sessionfinish,
)
from servers import Server

# huggingface_hub refuses every request, loopback included, under HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE (set
# by tests/conftest.py): the clients run without them; the server keeps its own (tests.servers.Server).
for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.pop(_name, None)


def pytest_collection_modifyitems(config, items):
    if importlib.util.find_spec("cohere") is None:   # the main venv: these run in .venv-clients
        skip = pytest.mark.skip(reason="the client libraries are installed in .venv-clients: run `make test`")
        for item in items:
            if "tests/clients/" in str(item.path).replace("\\", "/"):
                item.add_marker(skip)


@pytest.fixture(scope="session")
def server(tmp_path_factory):
    cards = write_compat_cards(tmp_path_factory.mktemp("compat-cards"))
    s = Server({"SIE_CATALOG_DIRS": str(cards), "SIE_CPU_PRECISION": "fp32", "SIE_THREADS": "1",
                "SIE_API_KEYS": KEY, "SIE_DEFAULT_MODEL": MINILM,
                "SIE_TEST_LOG_DIR": str(tmp_path_factory.mktemp("clients-logs"))}, ("--preload", MINILM))
    yield s
    s.stop()


@pytest.fixture(scope="session")
def http(server):
    with server.client() as c:
        yield c


@pytest.fixture(scope="session")
def url(server) -> str:
    return server.url
