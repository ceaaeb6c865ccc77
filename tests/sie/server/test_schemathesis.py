"""Property-based fuzzing of the live server from its own OpenAPI schema: no input may cause a 5xx."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ST = str(Path(sys.executable).parent / "schemathesis")


def test_no_generated_request_gets_a_server_error(server, tmp_path):
    out = subprocess.run(
        [ST, "run", f"{server.url}/openapi.json", "--checks", "not_a_server_error", "--max-examples", "150",
         "--workers", "1", "--seed", "7", "-H", "Authorization: Bearer test-key"],
        capture_output=True, text=True, timeout=600, cwd=tmp_path)
    report = out.stdout + out.stderr
    assert out.returncode == 0, report[-4000:]
    generated = int(re.search(r"(\d+) generated", report).group(1))
    assert generated >= 2000, report[-2000:]
    assert re.search(rf"{generated} generated, {generated} passed", report), report[-2000:]
    assert server.client().get("/healthz").status_code == 200
