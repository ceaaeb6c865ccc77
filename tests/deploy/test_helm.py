"""The chart through the real helm (v4): lint --strict and template for every profile, values.schema.json
refusing bad values, template-time consistency checks, and the pod contract the server relies on."""

from __future__ import annotations

import re

import pytest
import yaml
from deploy_helpers import CHART, NAMESPACE, PROFILES, helm_template, of_kind, render, run, tool

from sie.catalog import load_card
from sie.config import Settings


@pytest.mark.parametrize("profile", PROFILES)
def test_lint_strict(profile):
    args = [tool("helm"), "lint", "--strict", str(CHART), "--namespace", NAMESPACE]
    for v in PROFILES[profile]:
        args += ["-f", str(v)]
    out = run(args)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "0 chart(s) failed" in out.stdout


@pytest.mark.parametrize(("values", "expected"), [
    ({"workers": {"pools": {"cpu": {"profile": "tpu"}}}}, "value must be one of 'cpu', 'gpu'"),
    ({"workers": {"pools": {"cpu": {"autoscalng": {"enabled": True}}}}}, "additional properties 'autoscalng'"),
    ({"workers": {"pools": {"cpu": {"autoscaling": {"queueDepth": {"threshold": 0}}}}}}, "threshold"),
    ({"workers": {"pools": {"cpu": {"queueCapacity": "many"}}}}, "queueCapacity"),
    ({"workers": {"pools": {"CPU_pool": {"profile": "cpu"}}}}, "CPU_pool"),
    ({"routing": {"mode": "istio"}}, "/routing/mode"),
    ({"prometheus": {"url": "prometheus:9090"}}, "/prometheus/url"),
    ({"catalog": {"cards": {"bge.json": "name: x"}}}, "bge.json"),
    ({"keda": {"httpAddon": {"scalerAddress": "http://scaler"}}}, "scalerAddress"),
    ({"image": {"digest": "sha256:" + "0" * 64}}, "/image/digest"),   # one digest for both flavours: gone
    ({"workers": {"pools": {"cpu": {"secretEnv": {"HF_TOKEN": "hf_abc"}}}}}, "secretEnv"),  # never a value
])
def test_schema_rejects_bad_values(tmp_path, values, expected):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(values))
    out = helm_template([bad])
    assert out.returncode != 0, f"helm accepted {values}"
    assert "schema" in out.stderr and expected in out.stderr, out.stderr


@pytest.mark.parametrize(("values", "expected"), [
    ({"workers": {"pools": {"cpu": {"scaleToZero": {"enabled": True}}}}}, "scaleToZero needs autoscaling.enabled"),
    ({"routing": {"mode": "gateway"}}, "needs routing.gateway.parentRefs or routing.gateway.create"),
    ({"routing": {"mode": "ingress-nginx", "defaultPool": "gpu"}}, "routing.defaultPool 'gpu' is not one of"),
    ({"auth": {"enabled": True}}, "auth.enabled needs auth.existingSecret"),
    ({"pipelines": {"enabled": True}}, "pipelines.enabled needs pipelines.specs"),
    ({"ingest": {"jobs": [{"name": "x", "pipeline": "missing.yaml"}]}}, "is not a key of pipelines.specs"),
    ({"workers": {"pools": {"cpu": {"terminationNoticeSeconds": 15}}}},
     "preStopSleepSeconds + drainSeconds + terminationMarginSeconds = 50s exceeds terminationNoticeSeconds 15s"),
    ({"workers": {"pools": {"cpu": {"autoscaling": {"enabled": True, "minReplicas": 0}}}}},
     "minReplicas 0 needs servedBy (a burst pool) or scaleToZero"),
    ({"workers": {"pools": {"burst": {"servedBy": "nope"}}}}, "servedBy 'nope' must name an enabled pool"),
])
def test_inconsistent_values_fail_at_template_time(tmp_path, values, expected):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(values))
    out = helm_template([bad])
    assert out.returncode != 0 and expected in out.stderr, out.stderr


def test_a_pool_can_turn_a_default_off(tmp_path):
    """Pool values overlay the defaults with false and 0 too (sprig's merge would drop them)."""
    v = tmp_path / "v.yaml"
    v.write_text(yaml.safe_dump({"workers": {"defaults": {"idleTimeout": 60},
                                             "pools": {"cpu": {"pdb": {"enabled": False}, "idleTimeout": 0},
                                                       "other": {"profile": "cpu"}}}}))
    docs = render([v])
    assert [p["metadata"]["name"] for p in of_kind(docs, "PodDisruptionBudget")] == ["sie-other"]
    env = {d["metadata"]["name"]: {e["name"]: e.get("value") for e in
                                   d["spec"]["template"]["spec"]["containers"][0]["env"]}
           for d in of_kind(docs, "Deployment")}
    assert "SIE_IDLE_TIMEOUT" not in env["sie-cpu"] and env["sie-other"]["SIE_IDLE_TIMEOUT"] == "60"


SECRETS = {"SIE_API_KEYS", "SIE_ADMIN_KEY"}
# Not sie.config settings: SIE_RUN_STORE and SIE_DLQ_DIR are read by the pipelines (pipelines/cli.py,
# pipelines/spec.py); SIE_ENGINE_URL and
# SIE_ENGINE_API_KEY are the chart's names for the ${VAR}s a pipeline spec's engine uses. Listed here so
# that a typo in any other SIE_* name fails.
PIPELINES_ENV = {"SIE_ENGINE_URL", "SIE_ENGINE_API_KEY", "SIE_RUN_STORE", "SIE_DLQ_DIR"}


@pytest.mark.parametrize("profile", PROFILES)
def test_every_sie_variable_is_a_real_setting(rendered, profile):
    settings = {f"SIE_{name.upper()}" for name in Settings.model_fields}
    for doc in rendered[profile]:
        spec = doc.get("spec", {})
        pod = spec.get("template", {}).get("spec") or (spec if doc["kind"] == "Pod" else None)
        for c in (pod or {}).get("containers", []):
            for e in c.get("env", []):
                if e["name"].startswith("SIE_"):
                    assert e["name"] in settings | SECRETS | PIPELINES_ENV, (doc["metadata"]["name"], e["name"])


@pytest.mark.parametrize("profile", PROFILES)
def test_worker_pods_drain_and_probe_as_the_server_expects(rendered, profile):
    workers = [d for d in of_kind(rendered[profile], "Deployment")
               if d["metadata"]["labels"].get("app.kubernetes.io/component") == "worker"]
    assert workers
    for d in workers:
        pod = d["spec"]["template"]["spec"]
        c = pod["containers"][0]
        env = {e["name"]: e.get("value") for e in c["env"]}
        assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
        sleep = c["lifecycle"]["preStop"]["sleep"]["seconds"]
        # The kubelet's grace period must cover the preStop sleep and the server's whole drain.
        assert pod["terminationGracePeriodSeconds"] > sleep + int(env["SIE_DRAIN_SECONDS"])
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert c["securityContext"]["readOnlyRootFilesystem"] is True
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        assert env["HF_HOME"].startswith(mounts["model-cache"])
        gpu = d["metadata"]["labels"]["sie.dev/profile"] == "gpu"
        assert env["SIE_DEVICE"] == ("cuda" if gpu else "cpu")
        if gpu:
            assert c["resources"]["limits"]["nvidia.com/gpu"] >= 1
            assert any(t["key"] == "nvidia.com/gpu" for t in pod["tolerations"])
            # Spot pools drain within the provider's notice (GKE Spot ~15 s; AWS 2 min with the handler).
            if any(t["key"] == "sie.dev/spot" for t in pod["tolerations"]):
                assert pod["terminationGracePeriodSeconds"] <= {"eks": 120}.get(profile, 15)
            assert d["spec"]["template"]["spec"]["containers"][0]["image"].endswith("-cuda")


@pytest.mark.parametrize("profile", ["gpu", "gke", "eks"])
def test_catalog_configmap_cards_are_valid_model_cards(rendered, profile, tmp_path):
    """The cards a profile ships in its ConfigMap load with the engine's own card loader."""
    cms = [d for d in of_kind(rendered[profile], "ConfigMap") if d["metadata"]["name"].endswith("-catalog")]
    assert cms
    for name, text in cms[0]["data"].items():
        path = tmp_path / name
        path.write_text(text)
        card = load_card(path)
        assert card.name


def test_ingest_jobs_are_indexed_and_sharded(rendered):
    jobs = of_kind(rendered["all-features"], "Job")
    assert len(jobs) == 1
    spec = jobs[0]["spec"]
    assert spec["completionMode"] == "Indexed" and spec["completions"] == 8 and spec["parallelism"] == 4
    c = spec["template"]["spec"]["containers"][0]
    assert c["args"] == ["run", "/etc/sie/pipelines/docs.yaml", "--shard", "$(SHARD_INDEX)/8"]
    index = next(e for e in c["env"] if e["name"] == "SHARD_INDEX")
    assert "job-completion-index" in index["valueFrom"]["fieldRef"]["fieldPath"]
    assert re.fullmatch(r"sie-ingest-docs-[0-9a-f]{8}", jobs[0]["metadata"]["name"])


def test_routing_hashes_on_the_sdk_model_header(rendered):
    policy = of_kind(rendered["gpu"], "BackendTrafficPolicy")[0]["spec"]["loadBalancer"]
    assert policy == {"type": "ConsistentHash", "consistentHash": {"type": "Header",
                                                                   "header": {"name": "X-SIE-Model"}}}
    route = of_kind(rendered["gpu"], "HTTPRoute")[0]["spec"]["rules"]
    # The scale-to-zero pool's models go through the KEDA interceptor, addressed by the pool's host name.
    cold = route[0]
    assert {m["headers"][0]["value"] for m in cold["matches"]} == {"all-MiniLM-L6-v2",
                                                                   "sentence-transformers/all-MiniLM-L6-v2"}
    assert cold["filters"][0]["urlRewrite"]["hostname"] == "sie-cpu-cold"
    assert cold["backendRefs"][0]["name"] == "keda-add-ons-http-interceptor-proxy"
    assert route[-1]["backendRefs"] == [{"name": "sie-gpu", "port": 8080}]
    ingress = of_kind(rendered["all-features"], "Ingress")[0]["metadata"]["annotations"]
    assert ingress["nginx.ingress.kubernetes.io/upstream-hash-by"] == "$http_x_sie_model"
    assert ingress["nginx.ingress.kubernetes.io/upstream-vhost"] == "sie-cpu"


def test_pipeline_specs_in_the_configmap_load_with_the_rendered_environment(rendered, tmp_path):
    """The shipped spec validates with the pipelines room's own loader, given the env the Job renders."""
    from pipelines.spec import load_pipeline

    docs = rendered["all-features"]
    cm = next(d for d in of_kind(docs, "ConfigMap") if d["metadata"]["name"].endswith("-pipelines"))
    job = of_kind(docs, "Job")[0]["spec"]["template"]["spec"]["containers"][0]
    env = {e["name"]: e.get("value") or f"secret:{e['valueFrom']['secretKeyRef']['key']}"
           for e in job["env"] if e["name"].startswith("SIE_")}
    assert env["SIE_ENGINE_URL"] == "http://sie-cpu.sie-test.svc:8080"
    assert env["SIE_RUN_STORE"] == "secret:url"
    mount = next(m for m in job["volumeMounts"] if m["name"] == "data")
    for name, text in cm["data"].items():
        (tmp_path / name).write_text(text)
        spec = load_pipeline(tmp_path / name, env=env, strict_env=True)
        assert spec.engine.url == env["SIE_ENGINE_URL"]
        assert spec.source.root.startswith(mount["mountPath"])
