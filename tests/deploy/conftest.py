"""Fixtures of the deploy checks."""

from __future__ import annotations

import pytest
from deploy_helpers import PROFILES, render


@pytest.fixture(scope="session")
def rendered() -> dict[str, list[dict]]:
    """profile -> the manifests `helm template` renders for it."""
    return {name: render(files) for name, files in PROFILES.items()}
