"""The compatibility table's rows, recorded by the test runs of published client libraries (tests/clients, and
tests/superlinked in its own venv): their conftests import these hooks. Every test is marked
`@pytest.mark.compat(api, package, call)` (with `fails=why` where the test shows a client that cannot work);
`--compat-out FILE` writes each (api, package, installed version, call, outcome) of the run to FILE, which
docs/compat_table.py renders into the README's table."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pytest

API_ORDER = ("TEI", "Cohere", "OpenAI", "sie adapters", "SIE SDK", "SIE SDK integrations")


def pytest_addoption(parser):
    try:
        parser.addoption("--compat-out", default=None, help="write the compatibility results of this run to FILE")
    except ValueError:  # both conftests that import these hooks load in one run (`pytest tests`)
        pass


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
