"""Weaviate sink (client v4) against a Weaviate server.

    {"type": "weaviate", "collection": "Docs", "url": "http://weaviate:8080", "api_key": "${WEAVIATE_API_KEY}"}
    {"type": "weaviate", "collection": "Docs", "url": "https://w.example", "grpc_url": "grpcs://w-grpc.example:443"}

Dense and multivector named vectors, UUID ids, filters on scalar metadata (see `weaviate_mapping` for the
exact object layout). Writes go through `collection.batch.fixed_size(...)`; after each batch the sink reads
`collection.batch.failed_objects` and reports those records as failed with Weaviate's message: a batch
request that returns 200 can still have refused some objects. No sparse vectors (Weaviate cannot take
user-provided ones) and no fused hybrid queries: both fail with a message saying so.

The configured `collection` is an alias (Weaviate 1.32+): a new collection is created as
`<Collection>__<schema fingerprint>` with the alias pointing at it, and a blue/green reindex moves the alias
(`client.alias.update`). The schema and the sink generation are kept in the collection description.
"""

from __future__ import annotations

import json
import re
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import SecretStr, field_validator

from connectors.base import Hit, SearchRequest, Sink, Stored
from connectors.config import SinkConfig
from connectors.errors import ConnectorError
from connectors.filters import Node, fields
from connectors.records import Prepared, Schema

COLLECTION = re.compile(r"^[A-Za-z][_0-9A-Za-z]*$")
DELETE_CHUNK = 1000


def collection_name(name: str) -> str:
    """The name Weaviate gives a collection (or alias) called `name`: its first letter upper case."""
    return name[:1].upper() + name[1:]


class WeaviateConfig(SinkConfig):
    default_batch_size: ClassVar[int] = 200

    type: Literal["weaviate"]
    url: str
    grpc_url: str | None = None
    api_key: SecretStr | None = None

    @field_validator("collection")
    @classmethod
    def _class_name(cls, name: str) -> str:
        if not COLLECTION.match(name):
            raise ValueError("Weaviate collection names match [A-Za-z][_0-9A-Za-z]* (a GraphQL class name)")
        # Weaviate capitalizes class names (and answers an alias's target so): the logical name, and the
        # physical names a reindex derives from it, are kept in that form, so that they compare equal to it.
        return collection_name(name)

    @field_validator("url", "grpc_url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if url is not None and (urlsplit(url).scheme not in ("http", "https", "grpc", "grpcs")
                                or not urlsplit(url).hostname):
            raise ValueError("expected scheme://host[:port] with scheme http, https (url) or grpc, grpcs (grpc_url)")
        return url


def connection_params(config: WeaviateConfig) -> dict[str, Any]:
    """Arguments for `weaviate.connect_to_custom`: gRPC defaults to the HTTP host on port 50051."""
    http = urlsplit(config.url)
    http_secure = http.scheme == "https"
    grpc = urlsplit(config.grpc_url) if config.grpc_url else None
    grpc_secure = grpc.scheme in ("grpcs", "https") if grpc else http_secure
    return {"http_host": http.hostname, "http_port": http.port or (443 if http_secure else 80),
            "http_secure": http_secure, "grpc_host": grpc.hostname if grpc else http.hostname,
            "grpc_port": (grpc.port if grpc and grpc.port else (443 if grpc and grpc_secure else 50051)),
            "grpc_secure": grpc_secure}


class WeaviateSink(Sink):
    type = "weaviate"
    config_class = WeaviateConfig
    stores = frozenset({"dense", "multivector"})
    searches = frozenset({"dense", "multivector"})
    aliases = True

    def __init__(self, config: WeaviateConfig) -> None:
        super().__init__(config)
        import weaviate
        from weaviate.classes.init import Auth

        from connectors import weaviate_mapping

        self.mapping = weaviate_mapping
        key = self.config.secret(config.api_key)
        with self._connecting():
            self.client = weaviate.connect_to_custom(**connection_params(config),
                                                     auth_credentials=Auth.api_key(key) if key else None)
        self._properties: set[str] = set()

    @property
    def name(self) -> str:
        return collection_name(self.physical)

    @property
    def collection(self) -> Any:
        return self.client.collections.use(self.name)

    @classmethod
    def check_schema(cls, schema: Schema) -> None:
        sparse = schema.names("sparse")
        if sparse:
            raise ConnectorError(f"schema.vectors.{sparse[0]}: Weaviate cannot store user-provided sparse vectors "
                                 "(its keyword search is BM25 over text); use qdrant for sparse, or drop it",
                                 field=f"schema.vectors.{sparse[0]}", code="unsupported")
        super().check_schema(schema)

    # -- hooks -------------------------------------------------------------------------------------
    def _exists(self) -> bool:
        return self.client.collections.exists(self.name)

    def _read_schema(self) -> Schema | None:
        config = self.collection.config.get()
        self._properties = {p.name for p in config.properties}
        return self.mapping.schema_from_description(config.description)

    def _create(self, schema: Schema, generation: str) -> None:
        m = self.mapping
        self.client.collections.create(self.name, description=m.describe(schema, generation),
                                       properties=m.base_properties(), vector_config=m.vector_config(schema))
        self._properties = {m.TEXT, m.META}

    def _read_generation(self) -> str | None:
        return self.mapping.generation_from_description(self.collection.config.get().description)

    def _write_generation(self, generation: str) -> None:
        self.collection.config.update(description=self.mapping.describe(self.schema, generation))

    def _read_pointer(self) -> str | None:
        alias = self.client.alias.get(alias_name=collection_name(self.config.collection))
        return alias.collection if alias is not None else None

    def _write_pointer(self, physical: str | None) -> None:
        alias = collection_name(self.config.collection)
        exists = self.client.alias.exists(alias_name=alias)
        if physical is None:
            if exists:
                self.client.alias.delete(alias_name=alias)
        elif exists:
            self.client.alias.update(alias_name=alias, new_target_collection=collection_name(physical))
        else:
            if self.client.collections.exists(alias):
                self.client.collections.delete(alias)  # a collection of an older version holds the alias's name
            self.client.alias.create(alias_name=alias, target_collection=collection_name(physical))

    def _write(self, records: list[Prepared]) -> dict[str, str]:
        objects = [self.mapping.to_data_object(r) for r in records]
        self._add_properties(objects)
        with self.collection.batch.fixed_size(batch_size=len(objects), concurrent_requests=1) as batch:
            for obj in objects:
                batch.add_object(properties=obj.properties, uuid=obj.uuid, vector=obj.vector)
        return self.mapping.failures_from(self.collection.batch.failed_objects)

    def _add_properties(self, objects: list[Any]) -> None:
        from weaviate.exceptions import WeaviateBaseError

        for prop in self.mapping.new_properties(objects, self._properties):
            try:
                self.collection.config.add_property(prop)
            except WeaviateBaseError:  # another writer added it meanwhile: reload and go on
                self._read_schema()
                if prop.name not in self._properties:
                    raise
            self._properties.add(prop.name)

    def _delete_ids(self, ids: list[str]) -> None:
        from weaviate.classes.query import Filter

        for start in range(0, len(ids), DELETE_CHUNK):
            self.collection.data.delete_many(where=Filter.by_id().contains_any(ids[start:start + DELETE_CHUNK]))

    def _delete_where(self, where: Node | None) -> None:
        where = self._prune(where)
        if where is not None:
            self.collection.data.delete_many(where=self.mapping.to_filter(where))

    def _search(self, request: SearchRequest) -> list[Hit]:
        from weaviate.classes.query import MetadataQuery

        m = self.mapping
        where = self._prune(request.where) if request.where is not None else None
        if request.where is not None and where is None:
            return []
        (name, vector), = request.vectors.items()
        spec = self.schema.vectors[name]
        response = self.collection.query.near_vector(
            near_vector=vector.tolist(), target_vector=name, limit=request.limit,
            filters=m.to_filter(where) if where is not None else None,
            return_metadata=MetadataQuery(distance=True), return_properties=[m.TEXT, m.META])
        return [Hit(id=str(o.uuid), score=m.score(o.metadata.distance, spec.distance, spec.kind),
                    text=o.properties.get(m.TEXT) or "", metadata=json.loads(o.properties.get(m.META) or "{}"))
                for o in response.objects]

    def _prune(self, where: Node | None) -> Node | None:
        """The filter without conditions on properties no record has brought yet (None: nothing matches).

        Weaviate refuses filters on properties it does not know; such a condition matches no record.
        """
        names = {self.mapping.property_name(f) for f in fields(where)} - {None}
        if not names <= self._properties:
            self._read_schema()  # another writer may have added them
        return self.mapping.prune_unknown(where, self._properties)

    def _get(self, ids: list[str]) -> list[Stored]:
        from weaviate.classes.query import Filter

        m = self.mapping
        response = self.collection.query.fetch_objects(filters=Filter.by_id().contains_any(ids), limit=len(ids),
                                                       return_properties=[m.TEXT, m.META])
        return [Stored(str(o.uuid), o.properties.get(m.TEXT) or "", json.loads(o.properties.get(m.META) or "{}"))
                for o in response.objects]

    def _count(self) -> int:
        return self.collection.aggregate.over_all(total_count=True).total_count or 0

    def _drop(self) -> None:
        self.client.collections.delete(self.name)
        self._properties = set()

    def _close(self) -> None:
        self.client.close()

    def _is_backend_failure(self, error: Exception) -> bool:
        from weaviate.exceptions import WeaviateConnectionError

        return super()._is_backend_failure(error) or isinstance(error, WeaviateConnectionError)
