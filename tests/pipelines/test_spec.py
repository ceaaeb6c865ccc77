"""What a valid pipeline file becomes: paths made absolute against the file, defaults filled from the
encode step, ${ENV} secrets, fingerprints that change with the steps only, the JSON Schema (`sie schema`)
agreeing with the validator, and the step registries' rule: every step has a config and a test."""

from __future__ import annotations

import ast
import json
import subprocess
import textwrap
from pathlib import Path

import jsonschema
import pytest
from servers import SIE

from pipelines.errors import SpecError
from pipelines.json_schema import pipeline_schema
from pipelines.spec import load_pipeline, parse_pipeline
from pipelines.steps import INGEST_STEPS, QUERY_STEPS, step_class
from sie.server.errors import http_status

FULL = """\
    name: handbook
    version: 3
    description: The employee handbook
    engine: {url: "http://engine:8080", api_key: "${ENGINE_KEY}", timeout_s: 30}
    source: {type: files, root: "${DATA}/docs", glob: ["**/*.md", "*.jsonl"], id_field: id, sync_deletions: true}
    steps:
      - chunk: {by: tokens, size: 128, overlap: 16}
      - extract: {model: tiny/ner, labels: [PER, ORG], into: people}
      - encode: {model: tiny/embed, distance: dot}
      - score: {model: tiny/rerank, query: "holiday policy", field: relevance, keep_if: {gte: 0.1}, top_k: 3}
      - filter: {drop_if: {lang: de}}
      - map: {rename: {author: meta.author}, drop: [tmp], set: {dataset: handbook}}
    sinks:
      - {type: lancedb, uri: ./lance, collection: handbook}
      - {type: qdrant, url: "http://qdrant:6333", api_key: "${QDRANT_KEY}", collection: handbook}
    batch: {size: 32, queue: 2}
    retry: {attempts: 3, backoff_s: 0.1}
    dlq: ./failed.jsonl
"""
QUERY = """\
    name: handbook-search
    kind: query
    description: Search the handbook
    steps:
      - extract_filters: {model: tiny/ner, labels: [PER], fields: {PER: meta.author}}
      - encode: {model: tiny/embed}
      - search: {sink: {type: lancedb, uri: ./lance, collection: handbook}, limit: 30}
      - rerank: {model: tiny/rerank, top_k: 10, timeout_ms: 500}
      - trim: {max_tokens: 1500, dedupe: near}
"""
ENV = {"ENGINE_KEY": "k-1", "DATA": "/srv/data", "QDRANT_KEY": "q-1"}


def test_a_full_ingest_spec(tmp_path):
    p = parse_pipeline(textwrap.dedent(FULL), "handbook.yaml", tmp_path, env=ENV, strict_env=True)
    assert (p.name, p.version, p.kind) == ("handbook", "3", "ingest")
    assert p.engine.url == "http://engine:8080" and p.engine.api_key == "k-1" and p.engine.timeout_s == 30
    assert p.source.root == "/srv/data/docs" and p.source.glob == ["**/*.md", "*.jsonl"]
    assert [s.name for s in p.steps] == ["chunk", "extract", "encode", "score", "filter", "map"]
    assert p.steps[0].config.tokenizer == "tiny/embed"            # chunking by tokens defaults to the encoder's
    assert p.sinks[0].raw["uri"] == str(tmp_path / "lance")       # embedded paths: relative to the file
    assert p.sinks[1].raw["api_key"] == "${QDRANT_KEY}"           # resolved by the connector, never stored
    assert p.sinks[0].key != p.sinks[1].key and p.sinks[0].key.startswith("lancedb:handbook:")
    assert p.dlq == tmp_path / "failed.jsonl"
    assert (p.batch.size, p.retry.attempts) == (32, 3)


def test_a_query_spec_defaults_trim_to_the_encoder_and_resolves_the_sink(tmp_path):
    p = parse_pipeline(textwrap.dedent(QUERY), "q.yaml", tmp_path)
    assert p.kind == "query" and [s.name for s in p.steps] == ["extract_filters", "encode", "search", "rerank", "trim"]
    assert p.steps_named("trim")[0].config.tokenizer == "tiny/embed"
    assert p.steps_named("search")[0].config.sink["uri"] == str(tmp_path / "lance")


def test_unset_env_is_a_placeholder_for_validate_and_an_error_for_run(tmp_path):
    text = textwrap.dedent(FULL)
    assert parse_pipeline(text, "h.yaml", tmp_path, env={}).source.root.endswith("/unset-DATA/docs")
    with_url = text.replace('url: "http://engine:8080"', 'url: "${ENGINE_URL}"')
    assert parse_pipeline(with_url, "h.yaml", tmp_path, env={}).engine.url == "http://unset-ENGINE_URL"
    weaviate = ("name: w\nsource: {type: files, root: ., glob: ['*.md']}\nsteps:\n  - encode: {model: tiny/embed}\n"
                "sinks:\n  - {type: weaviate, url: '${WEAVIATE_URL}', collection: Docs}\n")
    assert parse_pipeline(weaviate, "w.yaml", tmp_path, env={}).sinks[0].raw["url"] == "${WEAVIATE_URL}"
    with pytest.raises(SpecError) as e:
        parse_pipeline(text, "h.yaml", tmp_path, env={"ENGINE_KEY": "k"}, strict_env=True)
    lines = e.value.message.splitlines()
    assert lines[0] == "h.yaml:5:29 source.root: references ${DATA}, but the environment variable DATA is not set"
    assert lines[1] == ("h.yaml:15:56 sinks[1].api_key: references ${QDRANT_KEY}, but the environment variable "
                        "QDRANT_KEY is not set")


def test_the_fingerprint_follows_the_steps_and_version_not_the_sinks(tmp_path):
    base = textwrap.dedent(FULL)

    def fp(text: str) -> str:
        return parse_pipeline(text, "h.yaml", tmp_path, env=ENV).fingerprint()

    assert fp(base) == fp(base.replace("collection: handbook}\n  - {type: qdrant",
                                       "collection: other}\n  - {type: qdrant"))
    assert fp(base) == fp(base.replace("attempts: 3", "attempts: 5"))
    assert fp(base) != fp(base.replace("size: 128", "size: 129"))
    assert fp(base) != fp(base.replace("version: 3", "version: 4"))


def test_the_json_schema_accepts_what_the_validator_accepts_and_refuses_unknown_keys(tmp_path):
    import yaml

    schema = pipeline_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    for text in (FULL, QUERY):
        data = yaml.safe_load(textwrap.dedent(text))
        jsonschema.validate(data, schema)
        data["steps"][0] = {next(iter(data["steps"][0])): {"no_such_key": 1}}
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(data, schema)


def test_sie_schema_prints_it(cli_env):
    out = subprocess.run([SIE, "schema", "--kind", "query"], env=cli_env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    schema = json.loads(out.stdout)
    assert schema["properties"]["kind"] == {"const": "query", "title": "Kind", "type": "string"}
    assert [next(iter(o["properties"])) for o in schema["properties"]["steps"]["items"]["oneOf"]] == list(QUERY_STEPS)


def test_the_json_schema_lists_every_registered_sink_type_and_step():
    """The sink list is the connectors' registry and the step lists are the step registries, in their order."""
    from connectors.registry import SINKS

    ingest = pipeline_schema("ingest")
    sinks = ingest["properties"]["sinks"]["items"]["oneOf"]
    assert [o["properties"]["type"]["const"] for o in sinks] == list(SINKS)
    assert [next(iter(o["properties"])) for o in ingest["properties"]["steps"]["items"]["oneOf"]] == list(INGEST_STEPS)


def steps_tested() -> dict[tuple[str, str], list[str]]:
    """(kind, step) -> the test modules here that say they test it: each module's `STEPS_TESTED`, a mapping to
    the name prefix of its tests that do ("": all of them), read without importing the module. A new step's
    test says so itself, so adding a step touches no table here."""
    found: dict[tuple[str, str], list[str]] = {}
    for module in sorted(Path(__file__).parent.glob("test_*.py")):
        tree = ast.parse(module.read_text())
        tests = [n.name for n in tree.body if isinstance(n, ast.FunctionDef) and n.name.startswith("test_")]
        for node in tree.body:
            if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["STEPS_TESTED"]:
                for entry, prefix in ast.literal_eval(node.value).items():
                    assert any(t.startswith(prefix or "test_") for t in tests), (module.name, entry, prefix)
                    found.setdefault(entry, []).append(module.name)
    return found


def test_every_registered_step_has_a_config_and_a_test():
    """The vLLM rule: a registered step without a test is a defect."""
    registered = {("ingest", n) for n in INGEST_STEPS} | {("query", n) for n in QUERY_STEPS}
    tested = steps_tested()
    assert set(tested) == registered
    for kind, name in registered:
        cls = step_class(kind, name)
        assert cls.name == name and cls.config_class.model_config["extra"] == "forbid"


def test_load_pipeline_reads_a_file_and_names_it_as_given(tmp_path):
    path = tmp_path / "p.yaml"
    path.write_text(textwrap.dedent(QUERY).replace("name: handbook-search", "name: Bad Name"))
    with pytest.raises(SpecError) as e:
        load_pipeline(path, shown_as="p.yaml")
    assert e.value.message.startswith("p.yaml:1:7 name: expected lower-case letters")
    assert e.value.code == "invalid_pipeline" and http_status(e.value) == 400


def test_dead_letters_follow_sie_dlq_dir_unless_the_file_names_a_path(tmp_path):
    text = textwrap.dedent(FULL)
    without = text.replace("dlq: ./failed.jsonl\n", "")
    assert parse_pipeline(without, "h.yaml", tmp_path, env=ENV).dlq == tmp_path / ".sie" / "dlq" / "handbook.jsonl"
    in_dir = parse_pipeline(without, "h.yaml", tmp_path, env={**ENV, "SIE_DLQ_DIR": "/var/lib/sie/dlq"})
    assert in_dir.dlq == Path("/var/lib/sie/dlq/handbook.jsonl")
    assert parse_pipeline(text, "h.yaml", tmp_path, env={**ENV, "SIE_DLQ_DIR": "/x"}).dlq == tmp_path / "failed.jsonl"


def test_env_references_in_step_settings_are_resolved(tmp_path):
    path = tmp_path / "q.yaml"
    path.write_text(textwrap.dedent("""\
        name: per-env
        kind: query
        steps:
          - encode: {model: "${EMBEDDER}"}
          - search: {sink: {type: lancedb, uri: ./lance, collection: kb}, limit: 5}
          - rerank: {model: "${RERANKER}", top_k: 2}
    """))
    p = load_pipeline(path, env={"EMBEDDER": "all-MiniLM-L6-v2", "RERANKER": "tiny/ce"}, strict_env=True)
    assert [s.config.model for s in p.steps if s.name in ("encode", "rerank")] == ["all-MiniLM-L6-v2", "tiny/ce"]
    with pytest.raises(SpecError, match=r"q.yaml:6:\d+ steps\[2\].rerank.model: references \$\{RERANKER\}"):
        load_pipeline(path, env={"EMBEDDER": "all-MiniLM-L6-v2"}, strict_env=True)


def test_env_defaults_apply_wherever_references_are_accepted(tmp_path):
    text = textwrap.dedent("""\
        name: defaults
        engine: {url: "${ENGINE_URL:-http://127.0.0.1:8080}", api_key: "${KEY}"}
        source: {type: files, root: "${DATA:-./docs}"}
        steps:
          - extract: {model: "${CLASSIFIER:-tiny/nli}", labels: [a, b], classes_into: topic}
          - encode: {model: tiny/embed}
        sinks:
          - {type: qdrant, url: "${QDRANT_URL:-http://127.0.0.1:6333}", collection: "${COLLECTION:-kb}"}
    """)
    p = parse_pipeline(text, "d.yaml", tmp_path, env={"KEY": "k"}, strict_env=True)
    assert p.engine.url == "http://127.0.0.1:8080" and p.source.root == str(tmp_path / "docs")
    assert p.steps[0].config.model == "tiny/nli"
    assert p.sinks[0].raw["collection"] == "${COLLECTION:-kb}"               # the connector resolves it
    from connectors.registry import load_config

    assert load_config(p.sinks[0].raw, {}).collection == "kb"
    env = {"KEY": "k", "ENGINE_URL": "https://sie:443", "CLASSIFIER": "tiny/other", "DATA": "/srv"}
    p = parse_pipeline(text, "d.yaml", tmp_path, env=env, strict_env=True)
    assert (p.engine.url, p.steps[0].config.model, p.source.root) == ("https://sie:443", "tiny/other", "/srv")
    with pytest.raises(SpecError, match=r"d.yaml:2:\d+ engine.api_key: a secret: give it as an"):
        parse_pipeline(text.replace('"${KEY}"', '"${KEY:-literal}"'), "d.yaml", tmp_path, env={}, strict_env=True)
