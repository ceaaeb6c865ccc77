"""bench/gpu.py cannot run without a GPU, but its code paths can: `--smoke` runs every section on CPU with
tiny models, the pure-torch flash-attn stand-in and a runner that raises torch.OutOfMemoryError, so a typo
or a broken section fails here and not in the few minutes a GPU is lent."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_every_section_runs_and_reports_on_cpu():
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "gpu.py"), "--smoke", "--rounds", "1"],
                         capture_output=True, text=True, env=env, timeout=600, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-4000:]
    line = json.loads(out.stdout.strip().splitlines()[-1])
    assert line["bench"] == "gpu" and line["smoke"] is True
    assert set(line["parity"]) == {"bert", "roberta", "xlm-roberta", "modernbert", "qwen2", "qwen3", "minilm"}
    assert all(p["flash"] and p["min_cos"] >= 0.999 for p in line["parity"].values()), line["parity"]
    assert line["throughput"]["bert_base"]["ours_per_s"] > 0
    assert line["oom"]["served"] and line["oom"]["split"] >= 1 and line["oom"]["fail"] == 0
    assert line["oom"]["max_abs_vs_unsplit"] < 1e-5
    assert line["lru"]["swap_ins"] == 10 and line["lru"]["host_tier_used_mib"] > 0
    assert line["lru"]["max_abs_after_swap"] == 0.0
    assert sum(s == "device" for s in line["lru"]["final_states"].values()) == 2
    assert set(line["goals"]) == {"parity", "flash_used", "throughput_2x", "mfu_35", "swap_in_10pct",
                                  "swap_in_exact", "oom_split_and_served"}
