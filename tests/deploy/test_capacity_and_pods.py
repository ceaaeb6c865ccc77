"""The cluster layer's capacity and pod contract, on the rendered chart: an on-demand GPU floor with spot
burst capacity behind one Service, drains sized to the provider's notice, KEDA fallback and fast scale-up,
Secret-backed environment, per-flavour image digests, writable caches under a read-only root, pre-pulled
images, /dev/shm, and ingest Job names that keep their hash."""

from __future__ import annotations

import re

import kubernetes_validate
import pytest
import yaml
from deploy_helpers import of_kind, render

GPU_PROFILES = ["gpu", "gke", "eks"]
PROFILE_NOTICE = {"gpu": 15, "gke": 15, "eks": 120}


def _by_name(docs: list[dict], kind: str) -> dict[str, dict]:
    return {d["metadata"]["name"]: d for d in of_kind(docs, kind)}


def _workers(docs: list[dict]) -> list[dict]:
    return [d for d in of_kind(docs, "Deployment")
            if d["metadata"]["labels"]["app.kubernetes.io/component"] == "worker"]


def _spot(pod: dict) -> bool:
    return any(t["key"] == "sie.dev/spot" for t in pod.get("tolerations", []))


@pytest.mark.parametrize("profile", GPU_PROFILES)
def test_an_on_demand_floor_and_a_spot_burst_share_one_service(rendered, profile):
    docs = rendered[profile]
    deployments, services = _by_name(docs, "Deployment"), _by_name(docs, "Service")
    floor, burst = deployments["sie-gpu"], deployments["sie-gpu-spot"]
    assert not _spot(floor["spec"]["template"]["spec"]) and floor["spec"]["replicas"] >= 1
    assert _spot(burst["spec"]["template"]["spec"])
    # One Service for both: the floor's selects sie.dev/serves, which both pools' pods carry.
    assert "sie-gpu-spot" not in services
    selector = services["sie-gpu"]["spec"]["selector"]
    assert selector["sie.dev/serves"] == "gpu" and "sie.dev/pool" not in selector
    for d in (floor, burst):
        labels = d["spec"]["template"]["metadata"]["labels"]
        assert all(labels.get(k) == v for k, v in selector.items()), d["metadata"]["name"]
    # The burst scales from zero on the whole Service's load; the floor is never scaled away.
    scaled = _by_name(docs, "ScaledObject")
    assert "sie-gpu" not in scaled and scaled["sie-gpu-spot"]["spec"]["minReplicaCount"] == 0
    for trigger in scaled["sie-gpu-spot"]["spec"]["triggers"]:
        assert 'service="sie-gpu"' in trigger["metadata"]["query"]
        assert float(trigger["metadata"]["activationThreshold"]) > 1   # only once the floor is busy
    route = of_kind(docs, "HTTPRoute")[0]
    assert "sie-gpu-spot" not in yaml.safe_dump(route)
    grace = burst["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace <= PROFILE_NOTICE[profile]


def test_gpu_pools_select_their_node_groups(rendered):
    for profile in ("gke", "eks"):
        deployments = _by_name(rendered[profile], "Deployment")
        assert deployments["sie-gpu"]["spec"]["template"]["spec"]["nodeSelector"]["sie.dev/pool"] == "gpu"
        assert deployments["sie-gpu-spot"]["spec"]["template"]["spec"]["nodeSelector"]["sie.dev/pool"] == "gpu-spot"


@pytest.mark.parametrize("profile", ["cpu", "gpu", "gke", "eks", "all-features"])
def test_scaledobjects_fall_back_when_prometheus_is_down_and_scale_up_in_steps_of_15s(rendered, profile):
    objects = of_kind(rendered[profile], "ScaledObject")
    assert objects
    for so in objects:
        spec = so["spec"]
        assert spec["fallback"]["failureThreshold"] == 3
        assert 1 <= spec["fallback"]["replicas"] <= spec["maxReplicaCount"]
        up = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]["scaleUp"]
        assert up["selectPolicy"] == "Max"
        assert {(p["type"], p["value"], p["periodSeconds"]) for p in up["policies"]} == {("Percent", 100, 15),
                                                                                           ("Pods", 4, 15)}


def test_worker_environment_from_secrets(tmp_path):
    values = tmp_path / "v.yaml"
    values.write_text(yaml.safe_dump({"workers": {"pools": {"cpu": {
        "secretEnv": {"HF_TOKEN": {"secret": "hf", "key": "token"}},
        "envFrom": [{"secretRef": {"name": "db-keys"}}]}}}}))
    (deployment,) = of_kind(render([values]), "Deployment")
    c = deployment["spec"]["template"]["spec"]["containers"][0]
    token = next(e for e in c["env"] if e["name"] == "HF_TOKEN")
    assert token == {"name": "HF_TOKEN", "valueFrom": {"secretKeyRef": {"name": "hf", "key": "token"}}}
    assert c["envFrom"] == [{"secretRef": {"name": "db-keys"}}]
    kubernetes_validate.validate(deployment, kubernetes_validate.latest_version(), strict=True)


def test_image_digests_are_per_flavour_and_per_pool(tmp_path):
    cpu, cuda, own = ("sha256:" + c * 64 for c in "abc")
    values = tmp_path / "v.yaml"
    values.write_text(yaml.safe_dump({"image": {"digest": {"cpu": cpu, "cuda": cuda}},
                                      "workers": {"pools": {"other": {"profile": "cpu", "image": {"digest": own}}}}}))
    from deploy_helpers import PROFILES

    images = {d["metadata"]["name"]: d["spec"]["template"]["spec"]["containers"][0]["image"]
              for d in _workers(render([*PROFILES["gpu"], values]))}
    assert images["sie-gpu"] == f"ghcr.io/sie-project/sie@{cuda}"
    assert images["sie-cpu-cold"] == f"ghcr.io/sie-project/sie@{cpu}"
    assert images["sie-other"] == f"ghcr.io/sie-project/sie@{own}"


@pytest.mark.parametrize("profile", ["default", "gpu", "all-features"])
def test_caches_and_home_are_on_a_writable_volume(rendered, profile):
    """The root filesystem is read-only: torch inductor, triton and anything under $HOME write to a mount."""
    for d in _workers(rendered[profile]):
        pod = d["spec"]["template"]["spec"]
        c = pod["containers"][0]
        env = {e["name"]: e.get("value") for e in c["env"]}
        writable = [m["mountPath"] for m in c["volumeMounts"] if not m.get("readOnly")]
        for name in ("HOME", "XDG_CACHE_HOME", "TORCHINDUCTOR_CACHE_DIR", "TRITON_CACHE_DIR"):
            assert any(env[name] == w or env[name].startswith(w + "/") for w in writable), (name, env[name])
        shm = next(v for v in pod["volumes"] if v["name"] == "dshm")
        assert shm["emptyDir"]["medium"] == "Memory" and shm["emptyDir"]["sizeLimit"]
        assert {"name": "dshm", "mountPath": "/dev/shm"} in c["volumeMounts"]


def test_gpu_images_are_pre_pulled_onto_the_pools_nodes(rendered):
    docs = rendered["eks"]
    daemonsets = _by_name(docs, "DaemonSet")
    for d in _workers(docs):
        if d["metadata"]["labels"]["sie.dev/profile"] != "gpu":
            continue
        pool = d["spec"]["template"]["spec"]
        ds = daemonsets[d["metadata"]["name"] + "-prepull"]["spec"]["template"]["spec"]
        assert ds["initContainers"][0]["image"] == pool["containers"][0]["image"]
        assert ds["nodeSelector"] == pool["nodeSelector"] and ds["tolerations"] == pool["tolerations"]


def test_ingest_job_names_keep_their_hash_when_cut(tmp_path):
    """A long release name pushes the Job name past 63 characters: the prefix is cut, never the hash."""
    release = "a-very-long-release-name-of-the-sie-chart-here"
    names = []
    for shards in (4, 8):
        values = tmp_path / f"v{shards}.yaml"
        values.write_text(yaml.safe_dump({
            "fullnameOverride": release,
            "pipelines": {"enabled": True, "specs": {"p.yaml": "name: p"}},
            "ingest": {"jobs": [{"name": "documents-ingest-job", "pipeline": "p.yaml", "shards": shards}]}}))
        (job,) = of_kind(render([values]), "Job")
        names.append(job["metadata"]["name"])
    for name in names:
        assert len(name) <= 63 and re.fullmatch(release + r"-ingest(-[-a-z]*)?-[0-9a-f]{8}", name), name
    assert names[0] != names[1]
