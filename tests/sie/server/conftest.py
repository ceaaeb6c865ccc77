"""Live servers for the HTTP tests: `sie serve` in a subprocess on a free loopback port, with a
catalog of tiny random-weight models (plus the bundled MiniLM), a broken card and corrupt weights."""

from __future__ import annotations

import shutil
import textwrap
from pathlib import Path

import pytest
from servers import SIE, Server, free_port  # noqa: F401 - re-exported for the server tests

TINY = ("tiny/a", "tiny/b", "tiny/c")


def tiny_card(name: str, folder: Path, dims: int = 64, extra: str = "") -> str:
    return textwrap.dedent(f"""
        name: {name}
        source: {{path: "{folder}"}}
        architecture: bert
        capabilities:
          encode: {{dense: {{dims: {dims}}}}}
        pooling: mean
        max_tokens: 64
        token_budget: 256
        precision: {{cpu: fp32}}
    """) + extra


@pytest.fixture(scope="session")
def tiny_catalog(tmp_path_factory, tiny_models) -> Path:
    d = tmp_path_factory.mktemp("catalog")
    for seed, name in enumerate(TINY):
        (d / f"{name.replace('/', '-')}.yaml").write_text(tiny_card(name, tiny_models("bert", seed=seed + 1)))
    corrupt = tmp_path_factory.mktemp("corrupt")
    shutil.copytree(tiny_models("bert"), corrupt, dirs_exist_ok=True)
    (corrupt / "model.safetensors").write_bytes(b"\0" * 64)
    (d / "corrupt.yaml").write_text(tiny_card("tiny/corrupt", corrupt))
    (d / "broken.yaml").write_text(tiny_card("tiny/broken", corrupt).replace("pooling: mean", "pooling: maximum"))
    return d


@pytest.fixture(scope="session")
def server_factory(tiny_catalog, tmp_path_factory):
    started: list[Server] = []
    logs = tmp_path_factory.mktemp("logs")

    def start(env: dict[str, str] | None = None, args: tuple[str, ...] = ()) -> Server:
        base = {"SIE_CATALOG_DIRS": str(tiny_catalog), "SIE_CPU_PRECISION": "fp32", "SIE_THREADS": "1",
                "SIE_TEST_LOG_DIR": str(logs)}
        server = Server({**base, **(env or {})}, args)
        started.append(server)
        return server

    yield start
    for s in started:
        s.stop()


@pytest.fixture(scope="session")
def server(server_factory) -> Server:
    """The shared server: API keys on, a small queue, MiniLM preloaded."""
    return server_factory({"SIE_API_KEYS": "test-key,second-key", "SIE_ADMIN_KEY": "admin-key",
                           "SIE_MAX_ITEMS": "64", "SIE_MAX_CHARS": "2000", "SIE_MAX_BODY_BYTES": "200000"},
                          ("--preload", "all-MiniLM-L6-v2"))
