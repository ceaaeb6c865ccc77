"""The `sie` command line, run as a real subprocess (the installed entry point)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SIE = str(Path(sys.executable).parent / "sie")


def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SIE_CPU_PRECISION": "fp32"}
    return subprocess.run([SIE, *args], input=stdin, capture_output=True, text=True, env=env, timeout=120)


def test_models_lists_the_catalog_and_which_weights_are_local():
    out = run("models", "--json")
    assert out.returncode == 0, out.stderr
    rows = {r["name"]: r for r in map(json.loads, out.stdout.splitlines())}
    assert rows["sentence-transformers/all-MiniLM-L6-v2"]["available"] is True
    assert rows["sentence-transformers/all-MiniLM-L6-v2"]["dims"] == 384
    assert len(rows) >= 14


def test_encode_prints_one_json_line_per_text_from_args_and_stdin():
    out = run("encode", "all-MiniLM-L6-v2", "hello world", "second text")
    assert out.returncode == 0, out.stderr
    lines = [json.loads(x) for x in out.stdout.splitlines()]
    assert [x["text"] for x in lines] == ["hello world", "second text"]
    assert len(lines[0]["dense"]) == 384 and lines[0]["tokens"] == 4
    piped = run("encode", "all-MiniLM-L6-v2", stdin="hello world\n\n")
    (single,) = [json.loads(x)["dense"] for x in piped.stdout.splitlines()]
    assert max(abs(a - b) for a, b in zip(single, lines[0]["dense"])) < 1e-6


def test_encode_errors_are_one_line_not_a_traceback():
    out = run("encode", "no-such-model", "x")
    assert out.returncode == 2
    assert "unknown model 'no-such-model'" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: serve --device cuda would start")
def test_serve_on_cuda_without_a_gpu_fails_at_start_with_the_reason():
    out = run("serve", "--device", "cuda", "--port", "1")
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "device: 'cuda' requested but no CUDA device is usable here" in out.stderr
    bad = run("serve", "--device", "tpu")
    assert bad.returncode == 2 and "expected auto, cpu, cuda or cuda:N, got 'tpu'" in bad.stderr
