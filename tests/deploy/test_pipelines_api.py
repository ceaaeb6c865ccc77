"""The pipelines API as the chart runs it: the rendered container's args and environment, the rendered
spec ConfigMap as its folder, a real `sie serve --pipelines` on loopback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from deploy_helpers import free_port, of_kind, stop, wait_http


@pytest.fixture(scope="module")
def pipelines_api(rendered, tmp_path_factory):
    docs = rendered["all-features"]
    deployment = next(d for d in of_kind(docs, "Deployment") if d["metadata"]["name"] == "sie-pipelines")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    mount = next(m["mountPath"] for m in container["volumeMounts"] if m["name"] == "pipelines")
    base = tmp_path_factory.mktemp("pipelines-api")
    specs = base / "specs"
    specs.mkdir()
    cm = next(d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-pipelines"))
    for name, text in cm["data"].items():
        (specs / name).write_text(text)
    port = free_port()
    args = [str(specs) if a == mount else a for a in container["args"]]
    args[args.index("--host") + 1] = "127.0.0.1"
    args[args.index("--port") + 1] = str(port)
    env = {e["name"]: e.get("value") for e in container["env"]}
    # Values the cluster fills from Secrets.
    env.update(SIE_RUN_STORE=str(base / "runs.sqlite"), SIE_ENGINE_API_KEY="test-key", SIE_API_KEYS="test-key",
               SIE_ADMIN_KEY="test-admin")
    log = base / "serve.log"
    proc = subprocess.Popen([str(Path(sys.executable).parent / "sie"), *args, "--log-level", "warning"],
                            env={**os.environ, "HF_HUB_OFFLINE": "1", **env, "SIE_DEVICE": "cpu"},
                            stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", proc, log)
        yield f"http://127.0.0.1:{port}", env, specs, base
    finally:
        stop(proc)


def test_the_api_serves_the_configmap_specs_against_the_workers(pipelines_api):
    url, env, _, _ = pipelines_api
    r = httpx.get(f"{url}/v1/pipelines", headers={"authorization": "Bearer test-key"}, timeout=30)
    assert r.status_code == 200, r.text
    listed = {p["name"]: p for p in r.json()["data"]}
    assert listed["docs"]["engine"] == env["SIE_ENGINE_URL"] == "http://sie-cpu.sie-test.svc:8080"
    assert r.json()["broken"] == []


def test_the_api_keeps_runs_in_the_run_store_the_chart_names(pipelines_api):
    _, env, specs, _ = pipelines_api
    assert not (specs / ".sie").exists()
    assert Path(env["SIE_RUN_STORE"]).exists()
