"""Chroma sink (chromadb 1.x): embedded (`path`), server (`url`), or in-memory (neither).

    {"type": "chroma", "collection": "docs", "path": "/data/chroma"}
    {"type": "chroma", "collection": "docs", "url": "http://chroma:8000", "api_key": "${CHROMA_TOKEN}"}

What Chroma can hold: ONE dense embedding per collection, compared by cosine, dot (`ip`) or l2. A schema
asking for several vectors, sparse or multivector fails at `ensure` saying so. Embeddings are always passed
explicitly and collections are created with `embedding_function=None`: Chroma's default function would
download a model. Writes go in batches no larger than the client's `get_max_batch_size()`.

Metadata flattening (Chroma metadata values must be scalars):
  * nested dicts become dotted keys: `{"source": {"page": 3}}` is stored as `{"source.page": 3}`, and a
    filter on `"source.page"` finds it;
  * lists are stored as their canonical JSON string (`"[1,2]"`); the keys holding such strings are listed
    under `_sie_json`, so reading back gives the lists again (they are not filterable);
  * None values and empty dicts are dropped; a record with no metadata left is stored without metadata.
An upsert replaces the stored metadata: Chroma's own upsert merges new keys into old ones, so the sink reads
the stored keys of the batch first and removes those the new version lacks.
The schema the collection was created with is kept in the collection metadata under `_sie_schema`, the
sink generation under `_sie_generation`. Logical names that point elsewhere (a blue/green reindex) are
records of the collection `sie_collections` (id: the logical name, metadata `physical`; a 1-d
placeholder embedding), one record per name so that two switches never overwrite each other.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal
from urllib.parse import urlsplit

from pydantic import SecretStr, field_validator, model_validator

from connectors.base import BACKEND_STATUS, Hit, SearchRequest, Sink, Stored
from connectors.config import MANIFEST, SinkConfig
from connectors.errors import ConnectorError
from connectors.filters import And, Condition, Node
from connectors.metadata import flatten_for_store, unflatten
from connectors.records import Prepared, Schema

SCHEMA_KEY = "_sie_schema"
GENERATION_KEY = "_sie_generation"
SPACES = {"cosine": "cosine", "dot": "ip", "l2": "l2"}
NAME = re.compile(r"^[a-zA-Z0-9][a-zA-Z0-9._-]{1,510}[a-zA-Z0-9]$")


class ChromaConfig(SinkConfig):
    default_batch_size: ClassVar[int] = 1000

    type: Literal["chroma"]
    path: str | None = None
    url: str | None = None
    api_key: SecretStr | None = None
    tenant: str = "default_tenant"
    database: str = "default_database"

    @field_validator("collection")
    @classmethod
    def _chroma_name(cls, name: str) -> str:
        if not NAME.match(name) or ".." in name:
            raise ValueError("Chroma collection names are 3-512 characters from [a-zA-Z0-9._-], starting and "
                             "ending with a letter or digit")
        return name

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str | None) -> str | None:
        if url is not None:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("url must look like http://host:port or https://host")
        return url

    @model_validator(mode="after")
    def _one_location(self) -> ChromaConfig:
        if self.path and self.url:
            raise ValueError("give path (embedded) or url (server), not both")
        return self


class ChromaSink(Sink):
    type = "chroma"
    config_class = ChromaConfig
    stores = frozenset({"dense"})
    searches = frozenset({"dense"})

    def __init__(self, config: ChromaConfig) -> None:
        super().__init__(config)
        import chromadb
        from chromadb.config import Settings

        settings = Settings(anonymized_telemetry=False)
        common: dict[str, Any] = {"settings": settings, "tenant": config.tenant, "database": config.database}
        with self._connecting():
            if config.url:
                parts = urlsplit(config.url)
                secure = parts.scheme == "https"
                headers = {"x-chroma-token": self.config.secret(config.api_key)} if config.api_key else None
                self.client = chromadb.HttpClient(host=parts.hostname, port=parts.port or (443 if secure else 8000),
                                                  ssl=secure, headers=headers, **common)
            elif config.path:
                self.client = chromadb.PersistentClient(path=config.path, **common)
            else:
                self.client = chromadb.EphemeralClient(**common)
        self._collection: Any = None
        self._manifest_handle: Any = None
        self._max_batch: int | None = None

    @classmethod
    def check_schema(cls, schema: Schema) -> None:
        if len(schema.vectors) != 1 or schema.names("dense") != list(schema.vectors):
            names = list(schema.vectors)
            extra = next((n for n in names if schema.vectors[n].kind != "dense"), names[-1])
            raise ConnectorError(f"schema.vectors.{extra}: Chroma stores one dense embedding per collection; the "
                                 f"schema asks for {schema.describe()}. Use qdrant, weaviate or lancedb for several "
                                 "named, sparse or multivector vectors", field=f"schema.vectors.{extra}",
                                 code="unsupported")

    @property
    def batch_size(self) -> int:
        if self._max_batch is None:
            self._max_batch = self.client.get_max_batch_size()
        return min(super().batch_size, self._max_batch)

    # -- hooks -------------------------------------------------------------------------------------
    def _exists(self) -> bool:
        from chromadb.errors import NotFoundError

        try:
            self._collection = self.client.get_collection(self.physical, embedding_function=None)
        except (NotFoundError, ValueError):
            return False
        return True

    def _read_schema(self) -> Schema | None:
        stored = (self._collection.metadata or {}).get(SCHEMA_KEY)
        return Schema.model_validate_json(stored) if stored else None

    def _create(self, schema: Schema, generation: str) -> None:
        spec = next(iter(schema.vectors.values()))
        self._collection = self.client.get_or_create_collection(
            self.physical, embedding_function=None,
            metadata={SCHEMA_KEY: schema.to_json(), GENERATION_KEY: generation},
            configuration={"hnsw": {"space": SPACES[spec.distance]}})

    def _read_generation(self) -> str | None:
        return (self._collection.metadata or {}).get(GENERATION_KEY)

    def _write_generation(self, generation: str) -> None:
        self._collection.modify(metadata={**(self._collection.metadata or {}), GENERATION_KEY: generation})

    def _manifest(self, create: bool) -> Any:
        """The manifest collection (its handle kept: readers look the pointer up before every query)."""
        from chromadb.errors import NotFoundError

        if self._manifest_handle is None:
            try:
                self._manifest_handle = self.client.get_or_create_collection(MANIFEST, embedding_function=None) \
                    if create else self.client.get_collection(MANIFEST, embedding_function=None)
            except (NotFoundError, ValueError):
                return None
        return self._manifest_handle

    def _read_pointer(self) -> str | None:
        manifest = self._manifest(create=False)
        if manifest is None:
            return None
        got = manifest.get(ids=[self.config.collection], include=["metadatas"])
        return got["metadatas"][0]["physical"] if got["ids"] else None

    def _write_pointer(self, physical: str | None) -> None:
        manifest = self._manifest(create=True)
        if physical is None:
            manifest.delete(ids=[self.config.collection])
        else:
            manifest.upsert(ids=[self.config.collection], embeddings=[[0.0]], metadatas=[{"physical": physical}])

    def _write(self, records: list[Prepared]) -> dict[str, str]:
        name = next(iter(self.schema.vectors))
        ids = [r.id for r in records]
        # Chroma's upsert merges metadata into the stored record; a replace must name the keys to remove.
        stored = self._collection.get(ids=ids, include=["metadatas"])
        old_keys = {i: set(m or ()) for i, m in zip(stored["ids"], stored["metadatas"], strict=True)}
        metadatas = []
        for r in records:
            flat: dict[str, Any] = flatten_for_store(r.metadata)
            flat.update({key: None for key in old_keys.get(r.id, ()) if key not in flat})
            metadatas.append(flat or None)
        self._collection.upsert(ids=ids, embeddings=[r.vectors[name] for r in records],
                                documents=[r.text for r in records], metadatas=metadatas)
        return {}

    def _delete_ids(self, ids: list[str]) -> None:
        for start in range(0, len(ids), self.batch_size):
            self._collection.delete(ids=ids[start:start + self.batch_size])

    def _delete_where(self, where: Node | None) -> None:
        self._collection.delete(where=to_chroma_where(where))

    def _search(self, request: SearchRequest) -> list[Hit]:
        (name, vector), = request.vectors.items()
        result = self._collection.query(query_embeddings=[vector], n_results=request.limit,
                                        where=to_chroma_where(request.where) if request.where else None,
                                        include=["documents", "metadatas", "distances"])
        distance = self.schema.vectors[name].distance
        return [Hit(id=i, score=_score(d, distance), text=doc or "", metadata=unflatten(meta))
                for i, doc, meta, d in zip(result["ids"][0], result["documents"][0], result["metadatas"][0],
                                           result["distances"][0], strict=True)]

    def _get(self, ids: list[str]) -> list[Stored]:
        got = self._collection.get(ids=ids, include=["documents", "metadatas"])
        return [Stored(i, doc or "", unflatten(meta))
                for i, doc, meta in zip(got["ids"], got["documents"], got["metadatas"], strict=True)]

    def _count(self) -> int:
        return self._collection.count()

    def _drop(self) -> None:
        self.client.delete_collection(self.physical)
        self._collection = None

    def _close(self) -> None:
        close = getattr(self.client, "close", None)
        if close is not None:
            close()

    def _is_backend_failure(self, error: Exception) -> bool:
        import httpx
        from chromadb.errors import ChromaError

        if isinstance(error, ChromaError) and error.code() in BACKEND_STATUS:  # auth, rate limit
            return True
        return super()._is_backend_failure(error) or isinstance(error, httpx.TransportError)


def _score(distance: float, metric: str) -> float:
    """Chroma reports distances: cosine 1-cos, ip 1-dot, l2 squared L2."""
    return -float(distance) if metric == "l2" else 1.0 - float(distance)


def to_chroma_where(node: Node | None) -> dict[str, Any] | None:
    """The filter in Chroma's `where` syntax (dotted fields are the flattened metadata keys)."""
    if node is None:
        return None
    if isinstance(node, Condition):
        value = list(node.value) if isinstance(node.value, tuple) else node.value
        return {node.field: {node.op: value}}
    return {"$and" if isinstance(node, And) else "$or": [to_chroma_where(part) for part in node.parts]}
