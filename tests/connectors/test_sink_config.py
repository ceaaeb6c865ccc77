"""Sink configuration from YAML dicts: the registry, unknown / missing / wrong keys, ${ENV_VAR} secrets."""

from __future__ import annotations

import socket
from typing import get_args

import pytest
import yaml
from sink_backends import declared_backends

from connectors import SINKS, ConnectorError, Sink, load_config, open_sink, sink_class
from connectors.chroma import ChromaConfig
from connectors.lancedb import LanceDBSink
from connectors.qdrant import QdrantConfig
from connectors.weaviate import WeaviateConfig, connection_params


def error(raw, env=None) -> ConnectorError:
    with pytest.raises(ConnectorError) as err:
        load_config(raw, env or {})
    return err.value


def test_registry_maps_every_type_to_a_sink_with_its_own_tests():
    """The registered types are exactly those the sinks' own test modules declare backends for (each pins its
    class there: test_<type>.py), and each type's class is a Sink whose config takes that type."""
    assert {backend.sink for backend in declared_backends().values()} == set(SINKS)
    for type_name in SINKS:
        cls = sink_class(type_name)
        assert issubclass(cls, Sink)
        assert get_args(cls.config_class.model_fields["type"].annotation) == (type_name,)


def test_unknown_or_missing_type_lists_the_valid_ones():
    for raw in ({"type": "pinecone", "collection": "x"}, {"collection": "x"}):
        err = error(raw)
        assert err.field == "sink.type"
        assert ", ".join(sorted(SINKS)) in err.message


def test_missing_collection_names_the_key():
    err = error({"type": "qdrant"})
    assert err.field == "sink.collection" and "required for sink type qdrant" in err.message


def test_unknown_option_lists_the_valid_options():
    err = error({"type": "chroma", "collection": "docs", "pathh": "/x"})
    assert err.field == "sink.pathh"
    assert "unknown option" in err.message and "path" in err.message and "url" in err.message


def test_wrong_types_name_the_key_and_the_value():
    err = error({"type": "lancedb", "collection": "docs", "uri": "/x", "batch_size": "many"})
    assert err.field == "sink.batch_size" and "'many'" in err.message
    err = error({"type": "lancedb", "collection": "docs", "uri": "/x", "batch_size": 0})
    assert err.field == "sink.batch_size" and "greater than 0" in err.message
    err = error({"type": "qdrant", "collection": ["a"]})
    assert err.field == "sink.collection"


def test_database_specific_rules_name_the_key():
    err = error({"type": "chroma", "collection": "x"})
    assert err.field == "sink.collection" and "3-512 characters" in err.message
    err = error({"type": "chroma", "collection": "docs", "path": "/a", "url": "http://h:1"})
    assert "not both" in err.message
    err = error({"type": "weaviate", "collection": "my-docs", "url": "http://w:8080"})
    assert err.field == "sink.collection" and "[A-Za-z][_0-9A-Za-z]*" in err.message
    err = error({"type": "weaviate", "collection": "Docs", "url": "w:8080"})
    assert err.field == "sink.url"


@pytest.mark.parametrize("kind", sorted(SINKS))
@pytest.mark.parametrize("name", ["sie_collections", "SIE_Collections", "docs__3f2a91c0"])
def test_names_sie_keeps_for_itself_are_refused_on_every_sink(kind, name):
    """The manifest of logical names, and a reindex's physical names (`<collection>__<8 hex>`), which another
    logical name's reindex could take."""
    options = {"weaviate": {"url": "http://127.0.0.1:1"}, "lancedb": {"uri": "/x"}}.get(kind, {})
    err = error({"type": kind, "collection": name, **options})
    assert err.field == "sink.collection" and "is reserved" in err.message and f"(got {name!r})" in err.message
    why = "logical collection names' pointers" if "__" not in name else "names its physical collections"
    assert why in err.message
    assert load_config({"type": kind, "collection": "docs__3f2a91c", **options})   # 7 hex digits: a name like any


def test_a_weaviate_collection_is_kept_as_weaviate_names_it():
    """Weaviate capitalizes class names and answers an alias's target so: the logical name (and the physical
    names a reindex derives from it) start upper case, so that they compare equal to what it answers."""
    from connectors.base import physical_name
    from connectors.records import Schema

    config = load_config({"type": "weaviate", "collection": "handbook", "url": "http://127.0.0.1:1"})
    assert config.collection == "Handbook"
    assert physical_name(config.collection, Schema.parse({"vectors": {"dense": {"dim": 3}}})).startswith("Handbook__")


def test_env_references_are_resolved_and_unset_ones_fail_naming_the_key():
    raw = yaml.safe_load("""
        type: qdrant
        collection: ${PREFIX}_docs
        url: http://${QHOST}:6333
        api_key: ${QKEY}
    """)
    config = load_config(raw, {"PREFIX": "prod", "QHOST": "qdrant", "QKEY": "s3cret"})
    assert isinstance(config, QdrantConfig)
    assert config.collection == "prod_docs" and config.url == "http://qdrant:6333"
    assert config.secret(config.api_key) == "s3cret" and "s3cret" not in repr(config)
    err = error(raw, {"PREFIX": "prod", "QHOST": "qdrant"})
    assert err.field == "sink.api_key" and "QKEY" in err.message and "not set" in err.message


def test_a_default_applies_when_the_variable_is_unset_or_empty():
    raw = {"type": "qdrant", "collection": "${PREFIX:-dev}_docs", "url": "${QDRANT_URL:-http://127.0.0.1:6333}"}
    assert load_config(raw, {}).collection == "dev_docs"
    assert load_config(raw, {"PREFIX": ""}).collection == "dev_docs"          # POSIX ':-': empty counts as unset
    config = load_config(raw, {"PREFIX": "prod", "QDRANT_URL": "http://q:6333"})
    assert (config.collection, config.url) == ("prod_docs", "http://q:6333")
    assert load_config({**raw, "collection": "${PREFIX}_x"}, {"PREFIX": ""}).collection == "_x"  # no default: as set


def test_secrets_must_be_env_references():
    err = error({"type": "qdrant", "collection": "docs", "url": "http://q:6333", "api_key": "plain-text-key"})
    assert err.field == "sink.api_key" and "${ENV_VAR}" in err.message
    assert "plain-text-key" not in err.message
    err = error({"type": "qdrant", "collection": "docs", "url": "http://q:6333", "api_key": "${KEY:-plain-key}"})
    assert err.field == "sink.api_key" and "plain-key" not in err.message  # a default would be a literal secret


@pytest.mark.parametrize("key", ["password", "token", "secret"])
def test_the_pipeline_files_secret_keys_are_secrets_in_a_sink_too(key):
    """One set of secret keys (connectors.config.SECRET_KEYS, which pipelines.spec uses): a literal value under
    any of them is refused before anything else is said about the key, and never echoed."""
    err = error({"type": "qdrant", "collection": "docs", "url": "http://q:6333", key: "hunter2"})
    assert err.field == f"sink.{key}" and "is a secret" in err.message and "hunter2" not in err.message


def test_defaults_and_batch_sizes():
    chroma = load_config({"type": "chroma", "collection": "docs"}, {})
    assert isinstance(chroma, ChromaConfig) and chroma.path is None and chroma.url is None
    assert chroma.effective_batch_size == 1000
    assert load_config({"type": "qdrant", "collection": "d", "batch_size": 64}, {}).effective_batch_size == 64


def test_open_sink_gives_a_working_sink(tmp_path):
    with open_sink({"type": "lancedb", "collection": "docs", "uri": str(tmp_path)}) as sink:
        assert isinstance(sink, LanceDBSink)
        sink.ensure({"vectors": {"dense": {"dim": 2}}})
        assert sink.count() == 0
    assert sink.closed


def test_weaviate_connection_params_from_urls():
    plain = WeaviateConfig(type="weaviate", collection="Docs", url="http://localhost:8080")
    assert connection_params(plain) == {"http_host": "localhost", "http_port": 8080, "http_secure": False,
                                        "grpc_host": "localhost", "grpc_port": 50051, "grpc_secure": False}
    cloud = WeaviateConfig(type="weaviate", collection="Docs", url="https://w.example",
                           grpc_url="grpcs://grpc-w.example")
    assert connection_params(cloud) == {"http_host": "w.example", "http_port": 443, "http_secure": True,
                                        "grpc_host": "grpc-w.example", "grpc_port": 443, "grpc_secure": True}


def test_schema_errors_name_the_key(tmp_path):
    sink = open_sink({"type": "lancedb", "collection": "docs", "uri": str(tmp_path)})
    with pytest.raises(ConnectorError) as err:
        sink.ensure({"vectors": {"dense": {"kind": "dense"}}})
    assert err.value.field == "schema.vectors.dense" and "need dim" in err.value.message
    with pytest.raises(ConnectorError) as err:
        sink.ensure({"vectors": {"dense": {"dim": 4, "size": 4}}})
    assert err.value.field == "schema.vectors.dense.size"
    with pytest.raises(ConnectorError) as err:
        sink.ensure({"vectors": {"mv": {"kind": "multivector", "dim": 4, "distance": "dot"}}})
    assert err.value.code == "unsupported" and "cosine only" in err.value.message


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("kind", ["chroma", "qdrant", "weaviate"])
def test_an_unreachable_server_is_a_backend_error_naming_the_url(kind):
    url = f"http://127.0.0.1:{_closed_port()}"
    with pytest.raises(ConnectorError) as err:
        sink = open_sink({"type": kind, "collection": "Docs", "url": url})
        sink.count()  # Qdrant's client connects lazily
    assert err.value.code == "backend_error" and err.value.field == "sink.url" and url in err.value.message


def test_a_locked_qdrant_folder_is_a_backend_error_naming_the_path(tmp_path):
    with open_sink({"type": "qdrant", "collection": "docs", "path": str(tmp_path)}):
        with pytest.raises(ConnectorError) as err:
            open_sink({"type": "qdrant", "collection": "docs", "path": str(tmp_path)})
    assert err.value.field == "sink.path" and "already accessed" in err.value.message
