"""Rendered manifests against real schemas: kubernetes-validate --strict (bundled Kubernetes OpenAPI
schemas) for the core kinds, and the KEDA and prometheus-operator CRD schemas (cloudcoil's generated
models) for ScaledObject, ServiceMonitor and PrometheusRule. A kind this file cannot validate must be
listed in NOT_SCHEMA_CHECKED with the reason, so a new kind never slips through unchecked."""

from __future__ import annotations

import json

import kubernetes_validate
import pytest
from cloudcoil.models.keda.v1alpha1 import ScaledObject
from cloudcoil.models.prometheus_operator.v1 import PrometheusRule, ServiceMonitor
from deploy_helpers import PROFILES

# Oldest Kubernetes the chart supports (Chart.yaml kubeVersion) and the newest schemas bundled.
K8S_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
CORE = {"v1", "apps/v1", "batch/v1", "policy/v1", "networking.k8s.io/v1"}
CRD_MODELS = {
    ("keda.sh/v1alpha1", "ScaledObject"): ScaledObject,
    ("monitoring.coreos.com/v1", "ServiceMonitor"): ServiceMonitor,
    ("monitoring.coreos.com/v1", "PrometheusRule"): PrometheusRule,
}
# No schema for these is installable here (no PyPI package bundles the KEDA HTTP add-on, Gateway API or
# Envoy Gateway CRDs): they are checked by helm template/lint and by the routing tests only.
NOT_SCHEMA_CHECKED = {
    ("http.keda.sh/v1alpha1", "HTTPScaledObject"),
    ("gateway.networking.k8s.io/v1", "HTTPRoute"),
    ("gateway.networking.k8s.io/v1", "Gateway"),
    ("gateway.networking.k8s.io/v1", "GatewayClass"),
    ("gateway.networking.k8s.io/v1beta1", "ReferenceGrant"),
    ("gateway.envoyproxy.io/v1alpha1", "BackendTrafficPolicy"),
}


def _name(doc: dict) -> str:
    return f"{doc['kind']}/{doc['metadata']['name']}"


@pytest.mark.parametrize("profile", PROFILES)
def test_every_rendered_kind_is_validated_or_declared(rendered, profile):
    for doc in rendered[profile]:
        key = (doc["apiVersion"], doc["kind"])
        assert doc["apiVersion"] in CORE or key in CRD_MODELS or key in NOT_SCHEMA_CHECKED, key


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("profile", PROFILES)
def test_core_kinds_pass_kubernetes_validate_strict(rendered, profile, version):
    checked = 0
    for doc in rendered[profile]:
        if doc["apiVersion"] not in CORE:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            pytest.fail(f"{profile}: {_name(doc)} invalid for Kubernetes {version}: {e.message} at {list(e.path)}")
        checked += 1
    assert checked >= 4


@pytest.mark.parametrize("profile", PROFILES)
def test_crds_match_their_schemas(rendered, profile):
    """Validation catches wrong types and missing required fields; the round trip catches unknown keys
    (the generated models ignore extras, so an unknown key is missing from the dump)."""
    for doc in rendered[profile]:
        model = CRD_MODELS.get((doc["apiVersion"], doc["kind"]))
        if model is None:
            continue
        back = model.model_validate(doc).model_dump(by_alias=True, exclude_unset=True, mode="json")
        assert back == doc, f"{_name(doc)}: keys the CRD schema does not know:\n{json.dumps(doc, indent=1)}"


def test_schema_checks_can_fail(rendered):
    """The two checks above refuse a broken manifest (guards against a validator that accepts anything)."""
    deployment = next(d for d in rendered["cpu"] if d["kind"] == "Deployment")
    broken = json.loads(json.dumps(deployment))
    broken["spec"]["template"]["spec"]["containers"][0]["readinessProbe"]["httpGet"]["pathh"] = "/readyz"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, K8S_VERSIONS[-1], strict=True)
    so = json.loads(json.dumps(next(d for d in rendered["cpu"] if d["kind"] == "ScaledObject")))
    so["spec"]["pollingIntervall"] = 5
    back = ScaledObject.model_validate(so).model_dump(by_alias=True, exclude_unset=True, mode="json")
    assert back != so
    del so["spec"]["triggers"][0]["metadata"]
    with pytest.raises(ValueError, match="metadata"):
        ScaledObject.model_validate(so)


@pytest.mark.parametrize("profile", ["cpu", "gpu", "gke", "eks", "all-features"])
def test_scaledobjects_scale_on_the_servers_own_metrics(rendered, profile):
    for so in (d for d in rendered[profile] if d["kind"] == "ScaledObject"):
        triggers = {t["name"]: t for t in so["spec"]["triggers"]}
        assert triggers["queue-depth"]["metadata"]["query"].startswith("sum(sie_queue_depth{")
        assert triggers["inflight"]["metadata"]["query"].startswith("sum(sie_inflight_requests{")
        zero = so["spec"]["minReplicaCount"] == 0
        # A burst pool (servedBy) watches the Service of the pool it bursts for, which keeps serving at zero.
        burst = f'service="{so["spec"]["scaleTargetRef"]["name"]}"' not in triggers["queue-depth"]["metadata"]["query"]
        # Scale to zero only where traffic is still seen at zero pods: the HTTP add-on's trigger, or a burst pool.
        assert zero == ("http-pending" in triggers) or (zero and burst and "http-pending" not in triggers)
        if zero and not burst:
            hso = next(d for d in rendered[profile] if d["kind"] == "HTTPScaledObject"
                       and d["metadata"]["name"] == triggers["http-pending"]["metadata"]["httpScaledObject"])
            # The add-on deletes a ScaledObject that has its HTTPScaledObject's name (skip mode).
            assert hso["metadata"]["name"] != so["metadata"]["name"]
            assert hso["metadata"]["annotations"]["httpscaledobject.keda.sh/skip-scaledobject-creation"] == "true"
            assert hso["spec"]["scaleTargetRef"]["name"] == so["spec"]["scaleTargetRef"]["name"]
