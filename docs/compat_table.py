"""The README's compatibility table, rendered from tests/clients/results.json and
tests/superlinked/results.json, which the client-library tests (and Superlinked's SIE SDK tests, in their
venv) write in `make test` (each row: an API, a published client and the version installed, a call, and
whether it works; "no: why" rows are tests that show the failure).

    python docs/compat_table.py          # print the table
    python docs/compat_table.py --write  # put it into README.md, between its compat-table markers

A test checks that the README carries exactly `table()`, so the table is the last run's results.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = (ROOT / "tests" / "clients" / "results.json", ROOT / "tests" / "superlinked" / "results.json")
README = ROOT / "README.md"
START, END = "<!-- compat-table: python docs/compat_table.py --write -->", "<!-- /compat-table -->"


def table() -> str:
    rows = ["| API | client library | version | call | works |", "|---|---|---|---|---|"]
    for r in (r for path in RESULTS for r in json.loads(path.read_text())):
        works = "yes" if r["works"] == "yes" else r["works"].replace("|", "\\|")
        rows.append(f"| {r['api']} | `{r['package']}` | {r['version']} | {r['call']} | {works} |")
    return "\n".join(rows)


def write() -> None:
    text = README.read_text()
    block = f"{START}\n{table()}\n{END}"
    new, n = re.subn(re.escape(START) + ".*?" + re.escape(END), lambda _: block, text, flags=re.S)
    if n != 1:
        sys.exit(f"{README}: expected one {START} ... {END} block, found {n}")
    README.write_text(new)


if __name__ == "__main__":
    write() if "--write" in sys.argv[1:] else print(table())
