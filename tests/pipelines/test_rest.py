"""The REST API against a live `sie serve --pipelines DIR`: list, trigger (with records and an
Idempotency-Key), poll to done, query; the server's API keys and error envelope apply."""

from __future__ import annotations

import time

import pytest
from pipeline_helpers import write_corpus, write_pipeline

KEY = {"authorization": "Bearer pipes-key"}


@pytest.fixture(scope="module")
def server(tmp_path_factory, pipeline_catalog):
    from servers import Server

    folder = tmp_path_factory.mktemp("served")
    write_pipeline(folder / "notes", """\
        name: notes
        description: Notes posted by other services
        source: {type: records, max_records: 50}
        steps:
          - encode: {model: tiny/embed}
        sinks:
          - {type: lancedb, uri: ./lance, collection: notes}
    """)
    write_pipeline(folder / "notes", """\
        name: notes-search
        kind: query
        description: Search the notes
        steps:
          - encode: {model: tiny/embed}
          - search: {sink: {type: lancedb, uri: ./lance, collection: notes}, limit: 10}
          - trim: {max_tokens: 12}
    """, "search.yaml")
    write_corpus(folder / "docs", {"a.md": "first file\n\nsecond paragraph", "b.md": "another file"})
    (folder / "docs" / "link.md").symlink_to(folder / "docs" / "a.md")  # refused: sources never follow links
    write_pipeline(folder, """\
        name: docs
        source: {type: files, root: ./docs}
        steps:
          - chunk: {by: paragraphs, size: 1}
          - encode: {model: tiny/embed}
        sinks:
          - {type: lancedb, uri: ./docs-lance, collection: docs}
    """, "docs.yaml")
    write_pipeline(folder, "name: broken\nsteps:\n  - encod: {model: tiny/embed}\n", "broken.yaml")
    write_pipeline(folder, "settings: {not: a pipeline}\n", "other.yaml")
    s = Server({"SIE_CATALOG_DIRS": str(pipeline_catalog), "SIE_CPU_PRECISION": "fp32", "SIE_API_KEYS": "pipes-key",
                "SIE_TEST_LOG_DIR": str(folder)}, ("--pipelines", str(folder)))
    s.folder = folder
    yield s
    s.stop()


def wait_done(client, run_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = client.get(f"/v1/runs/{run_id}").json()
        if run["state"] not in ("queued", "running"):
            return run
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} still {run['state']} after {timeout}s")


def test_listing_needs_the_key_and_shows_broken_files(server):
    with server.client() as c:
        anonymous = c.get("/v1/pipelines", headers={"authorization": ""})
        assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthorized"
        body = c.get("/v1/pipelines").json()
    assert {p["name"]: p["kind"] for p in body["data"]} == {"notes": "ingest", "notes-search": "query",
                                                            "docs": "ingest"}
    (broken,) = body["broken"]
    assert broken["file"] == "broken.yaml"
    assert "broken.yaml:1:1 source: required key is missing" in broken["problems"]
    assert any(p.startswith("broken.yaml:3:5 steps[0].encod: unknown step 'encod'") for p in broken["problems"])


def test_trigger_with_records_poll_then_query(server):
    records = [{"id": f"n{i}", "text": text, "metadata": {"team": "core"}}
               for i, text in enumerate(["rotate the api keys monthly", "backups run nightly", "page the on-call"])]
    with server.client() as c:
        started = c.post("/v1/pipelines/notes/runs", json={"records": records})
        assert started.status_code == 202, started.text
        run = started.json()
        assert run["state"] in ("queued", "running", "succeeded") and run["links"]["self"] == f"/v1/runs/{run['id']}"
        done = wait_done(c, run["id"])
        assert done["state"] == "succeeded", done
        (sink,) = done["counters"]["sinks"].values()
        assert sink["written"] == 3 and done["counters"]["stages"]["read"] == 3
        # The run lives in the store `sie run notes/pipeline.yaml` uses: CLI and REST share what they know.
        from pipelines.store import open_store

        store = open_store(server.folder / "notes" / ".sie" / "runs.sqlite")
        assert store.get_run(run["id"]).state == "succeeded" and len(store.sources("notes", next(iter(
            done["counters"]["sinks"])))) == 3
        store.close()
        answer = c.post("/v1/pipelines/notes-search/query", json={"query": "rotate the api keys monthly"}).json()
        assert answer["results"][0]["text"] == "rotate the api keys monthly"
        assert answer["results"][0]["metadata"]["team"] == "core"
        assert answer["tokens"]["before"] > answer["tokens"]["after"] > 0 and answer["tokens"]["budget"] == 12
        bigger = c.post("/v1/pipelines/notes-search/query", json={"query": "backups", "max_tokens": 100}).json()
        assert len(bigger["results"]) == 3 and bigger["tokens"]["after"] == bigger["tokens"]["before"]


def test_an_idempotency_key_answers_with_the_same_run(server):
    with server.client() as c:
        body = {"records": [{"id": "once", "text": "exactly once"}]}
        first = c.post("/v1/pipelines/notes/runs", json=body, headers={"Idempotency-Key": "req-42"})
        second = c.post("/v1/pipelines/notes/runs", json=body, headers={"Idempotency-Key": "req-42"})
        assert first.status_code == second.status_code == 202
        assert first.json()["id"] == second.json()["id"]
        assert first.json()["created"] is True and second.json()["created"] is False
        assert second.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
        assert wait_done(c, first.json()["id"])["state"] == "succeeded"
        other = c.post("/v1/pipelines/notes/runs", json=body, headers={"Idempotency-Key": "req-43"}).json()
        assert other["id"] != first.json()["id"]
        assert wait_done(c, other["id"])["counters"]["stages"]["skipped"] == 1   # same content: skipped


def test_a_files_pipeline_runs_from_its_folder(server):
    with server.client() as c:
        run = c.post("/v1/pipelines/docs/runs").json()
        done = wait_done(c, run["id"])
    assert done["state"] == "succeeded" and next(iter(done["counters"]["sinks"].values()))["written"] == 3
    assert done["counters"]["stages"]["refused"] == 1
    assert done["counters"]["refusals"] == [{"path": "link.md", "reason": "a symlink (sources never follow links)"}]


@pytest.mark.parametrize(("method", "path", "body", "status", "code", "field"), [
    ("post", "/v1/pipelines/notes/runs", {"records": [{"id": "x"}]}, 400, "source_error", "records[0].text"),
    ("post", "/v1/pipelines/notes/runs", {"records": [], "speed": "fast"}, 422, "invalid_input", "speed"),
    ("post", "/v1/pipelines/nope/runs", {}, 404, "pipeline_not_found", "name"),
    ("get", "/v1/runs/0123", None, 404, "run_not_found", "run_id"),
    ("post", "/v1/pipelines/docs/runs", {"records": [{"id": "a", "text": "b"}]}, 400, "pipeline_error", "records"),
    ("post", "/v1/pipelines/notes-search/runs", {}, 400, "pipeline_error", "name"),
    ("post", "/v1/pipelines/notes/query", {"query": "x"}, 400, "pipeline_error", "name"),
    ("post", "/v1/pipelines/notes-search/query", {"query": "x", "where": {"a": {"$bad": 1}}}, 400,
     "pipeline_error", "where.a.$bad"),
    ("post", "/v1/pipelines/notes-search/query", {"max_tokens": 5}, 422, "invalid_input", "query"),
])
def test_mistakes_get_the_error_envelope(server, method, path, body, status, code, field):
    with server.client() as c:
        response = c.request(method.upper(), path, json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == (code, field), error
    assert error["message"]
