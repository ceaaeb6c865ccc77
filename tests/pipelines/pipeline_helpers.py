"""Helpers of the pipelines tests (a module with a unique name: `from conftest import` would resolve to
whichever test folder's conftest was imported first)."""

from __future__ import annotations

import ctypes
import os
import textwrap
from pathlib import Path


def write_corpus(root: Path, docs: dict[str, str]) -> Path:
    """Files under `root` (names may hold folders); a value None deletes the file."""
    root.mkdir(parents=True, exist_ok=True)
    for name, text in docs.items():
        path = root / name
        if text is None:
            path.unlink(missing_ok=True)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    return root


def write_pipeline(folder: Path, text: str, name: str = "pipeline.yaml") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text(textwrap.dedent(text))
    return path


def paragraphs(doc: str, version: int, n: int) -> str:
    """A document of n paragraphs whose text says which document, version and paragraph it is."""
    return "\n\n".join(f"{doc} version {version} paragraph {i}: " + " ".join(f"w{(i * 7 + j) % 50}" for j in range(12))
                       for i in range(n))


def ingest(path: Path, engine, store_path: Path | None = None, **options):
    """Load and run an ingest pipeline in-process; returns the RunReport."""
    from pipelines.runner import IngestRunner, RunOptions
    from pipelines.spec import load_pipeline
    from pipelines.store import open_store

    p = load_pipeline(path, strict_env=True)
    store = open_store(store_path or path.parent / ".sie" / "runs.sqlite")
    try:
        listener = options.pop("listener", None)
        runner = IngestRunner(p, engine, store, listener=listener)
        return runner.run(RunOptions(**options))
    finally:
        store.close()


def open_sink_of(path: Path, index: int = 0):
    """The (ensured) sink a pipeline file writes to."""
    from connectors import open_sink
    from pipelines.spec import load_pipeline

    p = load_pipeline(path, strict_env=True)
    sink = open_sink(p.sinks[index].raw)
    sink.ensure()
    return sink


def chunk_ids(pipeline: str, counts: dict[str, int]) -> dict[str, tuple[str, int]]:
    """id -> (source, chunk index) for sources with these chunk counts (the connectors' id rule)."""
    from connectors import record_id

    return {record_id({"pipeline": pipeline, "source": s, "chunk": i}): (s, i) for s, n in counts.items()
            for i in range(n)}


def without_root_file_access() -> None:
    """preexec_fn: a child that honours file permissions even as root. Root reads a chmod 000 file through
    CAP_DAC_OVERRIDE / CAP_DAC_READ_SEARCH; dropped from the bounding set (PR_CAPBSET_DROP), the program
    it executes starts without them. Raises when the process may not drop capabilities."""
    if os.geteuid() != 0:
        return  # permissions apply already
    libc = ctypes.CDLL(None, use_errno=True)
    for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, capability, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) refused")


def file_access_is_enforced(folder: Path) -> bool:
    """Whether a child started with `without_root_file_access` is refused a chmod 000 file here."""
    import subprocess
    import sys

    probe = folder / "probe.txt"
    probe.write_text("x")
    probe.chmod(0)
    try:
        out = subprocess.run([sys.executable, "-c", f"open({str(probe)!r}).read()"], capture_output=True,
                             preexec_fn=without_root_file_access, timeout=60)
    except (OSError, subprocess.SubprocessError):
        return False
    finally:
        probe.chmod(0o644)
        probe.unlink()
    return out.returncode != 0 and b"PermissionError" in out.stderr
