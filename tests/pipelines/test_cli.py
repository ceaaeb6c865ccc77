"""`sie run | plan | query | validate` as a user runs them (real subprocesses): summaries, exit codes,
JSON output, and one-line errors instead of tracebacks. Runs use the live test engine server (cheap
processes); plan and query use the in-process engine."""

from __future__ import annotations

import json
import subprocess

import pytest
from pipeline_helpers import (
    file_access_is_enforced,
    open_sink_of,
    paragraphs,
    without_root_file_access,
    write_corpus,
    write_pipeline,
)
from servers import SIE

INGEST = """\
    name: cli-docs
    engine: {url}
    source: {{type: files, root: ./docs}}
    steps:
      - chunk: {{by: paragraphs, size: 1}}
      - encode: {{model: tiny/embed}}
    sinks:
      - {{type: lancedb, uri: ./lance, collection: docs}}
    retry: {{attempts: 1}}
"""


def sie(*args: str, env: dict, cwd=None) -> subprocess.CompletedProcess:
    out = subprocess.run([SIE, *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=180)
    assert "Traceback" not in out.stderr + out.stdout, out.stderr
    return out


@pytest.fixture()
def project(tmp_path, engine_server):
    write_corpus(tmp_path / "docs", {"a.md": paragraphs("a.md", 1, 3), "b.md": paragraphs("b.md", 1, 2)})
    write_pipeline(tmp_path, INGEST.format(url=engine_server.url))
    write_pipeline(tmp_path, """\
        name: cli-search
        kind: query
        steps:
          - encode: {model: tiny/embed}
          - search: {sink: {type: lancedb, uri: ./lance, collection: docs}, limit: 5}
          - trim: {max_tokens: 60}
    """, "search.yaml")
    return tmp_path


def test_run_prints_a_summary_and_reruns_skip(project, cli_env):
    first = sie("run", "pipeline.yaml", env=cli_env, cwd=project)
    assert first.returncode == 0, first.stderr
    row = next(line for line in first.stderr.splitlines() if "lancedb:docs" in line)
    assert [int(x) for x in row.replace("│", " ").split()[1:]] == [2, 0, 5, 5, 0, 0, 0]  # read refused chunked ...
    again = json.loads(sie("run", "pipeline.yaml", "--json", env=cli_env, cwd=project).stdout.splitlines()[-1])
    assert again["state"] == "succeeded" and again["counters"]["stages"]["skipped"] == 2
    rich = sie("run", "pipeline.yaml", "--progress", "rich", env=cli_env, cwd=project)
    assert "sources read/skipped" in rich.stderr and "→ lancedb:docs" in rich.stderr


def test_run_exit_codes_and_one_line_errors(project, cli_env, engine_server):
    write_corpus(project / "docs", {"blank.md": "   "})
    path = write_pipeline(project, INGEST.replace("- chunk: {{by: paragraphs, size: 1}}\n", "").format(
        url=engine_server.url), "nochunk.yaml")
    partial = sie("run", path.name, env=cli_env, cwd=project)
    assert partial.returncode == 1
    assert f"replay with `sie run {path.name} --retry-dlq`" in partial.stderr.replace("\n", "")
    cases = [(("run", "search.yaml"), "a query pipeline; use `sie query"),
             (("run", "pipeline.yaml", "--shard", "5/2"), "shard: index must be in 0..1"),
             (("query", "pipeline.yaml", "x"), "an ingest pipeline; use `sie run"),
             (("run", "missing.yaml"), "missing.yaml:1:1 (file): cannot read the file")]
    for args, message in cases:
        out = sie(*args, env=cli_env, cwd=project)
        assert out.returncode == 2 and message in out.stderr.replace("\n", " "), (args, out.stderr)


def test_an_unset_secret_fails_run_but_not_validate(project, cli_env, engine_server):
    write_pipeline(project, INGEST.format(url=engine_server.url).replace(
        "{type: lancedb, uri: ./lance, collection: docs}",
        '{type: qdrant, url: "http://127.0.0.1:1", api_key: "${NO_SUCH_KEY}", collection: docs}'), "secret.yaml")
    run = sie("run", "secret.yaml", env=cli_env, cwd=project)
    assert run.returncode == 2
    assert ("secret.yaml:8:56 sinks[0].api_key: references ${NO_SUCH_KEY}, but the environment variable "
            "NO_SUCH_KEY is not set") in run.stderr.replace("\n", "")
    validate = sie("validate", "secret.yaml", env=cli_env, cwd=project)
    assert validate.returncode == 0 and validate.stdout.startswith("ok secret.yaml: ingest pipeline 'cli-docs'")


def test_plan_shows_what_a_run_would_do_and_query_answers(project, cli_env):
    local = INGEST.replace("    engine: {url}\n", "").format()
    write_pipeline(project, local, "local.yaml")
    planned = sie("plan", "local.yaml", "--json", env=cli_env, cwd=project)
    assert planned.returncode == 0, planned.stderr
    before = json.loads(planned.stdout)
    assert before["engine"] == "in-process" and before["sinks"][0]["schema"] == {
        "dense": {"kind": "dense", "dim": 64, "distance": "cosine"}}
    assert before["source"]["per_sink"]["lancedb:docs"] == {"process": 2, "skip": 0, "vanished": 0}
    assert sie("run", "local.yaml", env=cli_env, cwd=project).returncode == 0
    after = sie("plan", "local.yaml", env=cli_env, cwd=project)
    assert "lancedb:docs: would process 0, skip 2, vanished 0" in after.stdout
    answer = json.loads(sie("query", "search.yaml", "a.md version 1 paragraph 2", "--json", env=cli_env,
                            cwd=project).stdout)
    assert answer["retrieved"] == 5 and answer["tokens"]["budget"] == 60
    assert 0 < answer["tokens"]["after"] <= 60 < answer["tokens"]["before"]
    table = sie("query", "search.yaml", "backups", "--max-tokens", "200", env=cli_env, cwd=project)
    assert "tokens:" in table.stdout and "(budget 200)" in table.stdout


def test_plan_refuses_vectors_a_sink_cannot_hold_and_creates_nothing(tmp_path, cli_env):
    write_corpus(tmp_path / "docs", {"a.md": "text"})
    write_pipeline(tmp_path, """\
        name: hybrid
        source: {type: files, root: ./docs}
        steps:
          - encode: {model: tiny/splade, outputs: {dense: dense, sparse: lexical}}
        sinks:
          - {type: chroma, path: ./chroma, collection: docs}
    """)
    out = sie("plan", "pipeline.yaml", env=cli_env, cwd=tmp_path)
    assert out.returncode == 2
    assert out.stderr.startswith("error pipeline.yaml:6:5 sinks[0].vectors.lexical: Chroma stores one dense "
                                 "embedding per collection; the schema asks for dense (dense), lexical (sparse)")
    assert "(vector 'lexical' is sparse, made by steps[0].encode.outputs.sparse)" in out.stderr
    validate = sie("validate", "pipeline.yaml", env=cli_env, cwd=tmp_path)   # refused before any model is known
    assert validate.returncode == 2 and validate.stderr == out.stderr
    assert not (tmp_path / "chroma").exists() and not (tmp_path / ".sie").exists()


def test_run_says_what_was_refused_in_json_and_under_the_summary(tmp_path, cli_env, engine_server):
    """Every kind of refusal, the permission ones included (as root through a child without the capability
    that bypasses permissions): counted, listed with reasons, and none of them looks deleted."""
    if not file_access_is_enforced(tmp_path):
        pytest.skip("this process may not drop CAP_DAC_OVERRIDE, so a chmod 000 file stays readable to root")
    docs = write_corpus(tmp_path / "docs", {"ok.md": "fine", "locked.md": "locked", "private/inner.md": "inner",
                                            "big.md": "x" * 300})
    write_pipeline(tmp_path, f"""\
        name: refusals
        engine: {engine_server.url}
        source: {{type: files, root: ./docs, sync_deletions: true, max_file_bytes: 200}}
        steps:
          - encode: {{model: tiny/embed}}
        sinks:
          - {{type: lancedb, uri: ./lance, collection: refusals}}
    """)
    first = json.loads(sie("run", "pipeline.yaml", "--json", env=cli_env, cwd=tmp_path).stdout.splitlines()[-1])
    assert first["counters"]["refusals"] == [{"path": "big.md", "reason": "300 bytes exceeds "
                                                                          "source.max_file_bytes (200)"}]
    (docs / "bad.md").write_bytes(b"ok \xff\xfe")
    (docs / "link.md").symlink_to(docs / "ok.md")
    (docs / "locked.md").chmod(0)
    (docs / "private").chmod(0)
    try:
        def sie_as_user(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run([SIE, *args, "pipeline.yaml"], env=cli_env, cwd=tmp_path, text=True,
                                  capture_output=True, timeout=180, preexec_fn=without_root_file_access)

        planned = json.loads(sie_as_user("plan", "--json").stdout)["source"]
        out = sie_as_user("run", "--json")
        report = json.loads(out.stdout.splitlines()[-1])
        table = sie_as_user("run")
    finally:
        (docs / "locked.md").chmod(0o644)
        (docs / "private").chmod(0o755)
    assert out.returncode == 0 and report["state"] == "succeeded", out.stderr
    expected = [("private", "a folder that cannot be listed: permission denied"),
                ("link.md", "a symlink (sources never follow links)"),
                ("bad.md", "not utf-8 text (source.encoding): byte 0xff at offset 3"),
                ("big.md", "300 bytes exceeds source.max_file_bytes (200)"),
                ("locked.md", "cannot be read: permission denied")]
    assert [(r["path"], r["reason"]) for r in report["counters"]["refusals"]] == expected
    assert [(r["path"], r["reason"]) for r in planned["refusals"]] == expected and planned["refused"] == 5
    assert planned["per_sink"]["lancedb:refusals"] == {"process": 0, "skip": 1, "vanished": 0}
    assert report["counters"]["stages"]["refused"] == 5
    (counts,) = report["counters"]["sinks"].values()
    assert counts["deleted"] == 0 and counts["skipped"] == 1                  # ok.md unchanged, nothing vanished
    sink = open_sink_of(tmp_path / "pipeline.yaml")
    try:
        assert sink.count() == 3                                               # ok, locked, inner: all kept
    finally:
        sink.close()
    assert table.returncode == 0, table.stderr
    row = next(line for line in table.stderr.splitlines() if "lancedb:refusals" in line)
    assert [int(x) for x in row.replace("│", " ").split()[1:]][:2] == [0, 5]   # read 0, refused 5
    listed = [line for line in table.stderr.splitlines() if line.startswith("refused ")]
    assert listed == [f"refused {path}: {reason}" for path, reason in expected]

def test_full_rerun_notes_a_recreated_sink_and_plan_shows_a_reindex(project, cli_env):
    import shutil

    assert sie("run", "pipeline.yaml", env=cli_env, cwd=project).returncode == 0
    shutil.rmtree(project / "lance")                                    # the table is gone, the run store is not
    rerun = sie("run", "pipeline.yaml", env=cli_env, cwd=project)
    assert rerun.returncode == 0 and "sink was recreated: backfilling 2 sources" in rerun.stderr, rerun.stderr
    full = json.loads(sie("run", "pipeline.yaml", "--full", "--json", env=cli_env, cwd=project).stdout.splitlines()[-1])
    (counts,) = full["counters"]["sinks"].values()
    assert full["counters"]["stages"]["read"] == 2 and counts["written"] == 5 and full["counters"]["notes"] == []
    path = project / "pipeline.yaml"
    path.write_text(path.read_text().replace("model: tiny/embed}", "model: tiny/splade, outputs: {dense: dense, "
                                                                   "sparse: words}}"))
    plan = sie("plan", "pipeline.yaml", env=cli_env, cwd=project)
    assert plan.returncode == 0, plan.stderr
    assert "model changed: reindex into docs__" in plan.stdout and "then switch pointer" in plan.stdout
