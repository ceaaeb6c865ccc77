"""The published client libraries (tests/clients/requirements.txt, in their own venv .venv-clients) against a
live `sie serve` on loopback, started from the main venv (SIE_BIN, set by the Makefile).

Every test is marked `@pytest.mark.compat(api, package, call)` (with `fails=why` where the test shows a
client that cannot work); `--compat-out FILE` writes each (api, package, installed version, call, outcome)
of the run to FILE, which docs/compat_table.py renders into the README's table.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
from pathlib import Path

import pytest
from client_settings import KEY, MINILM
from compat_reference import write_compat_cards
from servers import Server

# huggingface_hub refuses every request, loopback included, under HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE (set
# by tests/conftest.py): the clients run without them; the server keeps its own (tests.servers.Server).
for _name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.pop(_name, None)
API_ORDER = ("TEI", "Cohere", "OpenAI", "sie adapters")


def pytest_addoption(parser):
    parser.addoption("--compat-out", default=None, help="write the compatibility results of this run to FILE")


def pytest_collection_modifyitems(config, items):
    if importlib.util.find_spec("cohere") is None:   # the main venv: these run in .venv-clients
        skip = pytest.mark.skip(reason="the client libraries are installed in .venv-clients: run `make test`")
        for item in items:
            if "tests/clients/" in str(item.path).replace("\\", "/"):
                item.add_marker(skip)


def pytest_configure(config):
    config.addinivalue_line("markers", "compat(api, package, call, fails=None): a row of the compatibility table")
    config._compat_rows = {}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    marker = item.get_closest_marker("compat")
    if marker is None or report.skipped or (report.when != "call" and report.passed):
        return
    api, package, what = marker.args
    fails = marker.kwargs.get("fails")
    key = (api, package, what)
    passed = report.passed and item.config._compat_rows.get(key, {}).get("passed", True)
    item.config._compat_rows[key] = {
        "api": api, "package": package, "version": importlib.metadata.version(package), "call": what,
        "passed": passed, "works": "test failed" if not passed else (f"no: {fails}" if fails else "yes")}


def pytest_sessionfinish(session, exitstatus):
    out = session.config.getoption("--compat-out", default=None)
    if out:
        rows = sorted(session.config._compat_rows.values(),
                      key=lambda r: (API_ORDER.index(r["api"]), r["package"], r["call"]))
        Path(out).write_text(json.dumps([{k: v for k, v in r.items() if k != "passed"} for r in rows], indent=1)
                             + "\n")


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
