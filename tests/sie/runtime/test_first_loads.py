"""The first requests for two models, arriving together in a fresh process, both load: transformers
resolves its names lazily and not thread-safely, so two load threads that are each the first to touch
it failed one of them with "cannot import name 'AutoConfig' from 'transformers'" (a 502 for that model)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SCRIPT = """
import sys, threading
from sie import Engine
from sie.config import Settings

engine = Engine(Settings(device="cpu", catalog_dirs=[sys.argv[1]]))
errors = []

def load(name):
    try:
        engine.encode_sync(name, ["first request"])
    except Exception as e:
        errors.append(f"{name}: {e!r}")

threads = [threading.Thread(target=load, args=(name,)) for name in ("first/a", "first/b")]
for t in threads:
    t.start()
for t in threads:
    t.join()
engine.close()
print(errors)
"""


def test_two_models_first_loaded_at_once_in_a_fresh_process_both_load(tmp_path, tiny_models):
    for seed, name in ((21, "a"), (22, "b")):
        (tmp_path / f"{name}.yaml").write_text(textwrap.dedent(f"""
            name: first/{name}
            source: {{path: "{tiny_models('bert', seed=seed)}"}}
            architecture: bert
            capabilities: {{encode: {{dense: {{dims: 64}}}}}}
            max_tokens: 64
        """))
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1", "SIE_THREADS": "1"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout
