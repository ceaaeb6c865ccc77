"""Qdrant sink: a server (`url`), the local engine on disk (`path`), or in memory (neither).

    {"type": "qdrant", "collection": "docs", "url": "http://qdrant:6333", "api_key": "${QDRANT_API_KEY}"}
    {"type": "qdrant", "collection": "docs", "path": "/data/qdrant"}

Everything the contract knows maps onto Qdrant: named dense vectors (Cosine / Dot / Euclid), sparse vectors
(with `Modifier.IDF` when the schema says `idf: true`), multivectors compared by MaxSim
(`MultiVectorConfig(comparator=MAX_SIM)`), and hybrid search: a `{name: vector}` query becomes one prefetch
per vector fused with reciprocal rank fusion (`FusionQuery(fusion=Fusion.RRF)`), all through
`query_points`. Upserts are batched with `wait=True`. The payload is the record's metadata as is (nested
dicts and lists included) plus the text under `_sie_text`; the schema and the sink generation are kept in
the collection metadata. The configured `collection` is an alias: a new collection is created as
`<collection>__<schema fingerprint>` with the alias pointing at it, and a blue/green reindex switches the
alias in one `update_collection_aliases` call (a collection created under the plain name by an older
version is dropped when the alias replaces it: Qdrant refuses an alias named like a collection).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import SecretStr, model_validator

from connectors.base import Hit, SearchRequest, Sink, Stored
from connectors.config import SinkConfig
from connectors.filters import And, Condition, Node
from connectors.records import Prepared, Schema

TEXT = "_sie_text"
SCHEMA_KEY = "_sie_schema"
GENERATION_KEY = "_sie_generation"
#: Each prefetch of a hybrid query fetches this many times `limit` candidates before fusion.
PREFETCH_FACTOR = 4


class QdrantConfig(SinkConfig):
    default_batch_size: ClassVar[int] = 256

    type: Literal["qdrant"]
    url: str | None = None
    path: str | None = None
    api_key: SecretStr | None = None
    prefer_grpc: bool = False
    timeout: int | None = None

    @model_validator(mode="after")
    def _one_location(self) -> QdrantConfig:
        if self.path and self.url:
            raise ValueError("give url (server) or path (local engine), not both")
        return self


class QdrantSink(Sink):
    type = "qdrant"
    config_class = QdrantConfig
    stores = frozenset({"dense", "sparse", "multivector"})
    searches = frozenset({"dense", "sparse", "multivector"})
    hybrid = True
    aliases = True

    def __init__(self, config: QdrantConfig) -> None:
        super().__init__(config)
        from qdrant_client import QdrantClient

        with self._connecting():
            if config.url:
                self.client = QdrantClient(url=config.url, api_key=self.config.secret(config.api_key),
                                           prefer_grpc=config.prefer_grpc, timeout=config.timeout)
            elif config.path:
                self.client = QdrantClient(path=config.path)  # one client per folder: it locks the folder
            else:
                self.client = QdrantClient(":memory:")

    # -- hooks -------------------------------------------------------------------------------------
    def _exists(self) -> bool:
        return self.client.collection_exists(self.physical)

    def _metadata(self) -> dict[str, Any]:
        return self.client.get_collection(self.physical).config.metadata or {}

    def _read_schema(self) -> Schema | None:
        stored = self._metadata().get(SCHEMA_KEY)
        return Schema.model_validate(stored) if stored else None

    def _read_generation(self) -> str | None:
        return self._metadata().get(GENERATION_KEY)

    def _write_generation(self, generation: str) -> None:
        self.client.update_collection(self.physical, metadata={GENERATION_KEY: generation})  # merged by Qdrant

    def _read_pointer(self) -> str | None:
        return next((a.collection_name for a in self.client.get_aliases().aliases
                     if a.alias_name == self.config.collection), None)

    def _write_pointer(self, physical: str | None) -> None:
        from qdrant_client import models

        alias = self.config.collection
        ops: list[Any] = [models.DeleteAliasOperation(delete_alias=models.DeleteAlias(alias_name=alias))] \
            if self._read_pointer() is not None else []
        if physical is not None:
            if self.client.collection_exists(alias) and not ops:
                self.client.delete_collection(alias)  # a collection of an older version holds the alias's name
            ops.append(models.CreateAliasOperation(create_alias=models.CreateAlias(collection_name=physical,
                                                                                   alias_name=alias)))
        if ops:
            self.client.update_collection_aliases(change_aliases_operations=ops)

    def _create(self, schema: Schema, generation: str) -> None:
        from qdrant_client import models

        distances = {"cosine": models.Distance.COSINE, "dot": models.Distance.DOT, "l2": models.Distance.EUCLID}
        dense, sparse = {}, {}
        for name, spec in schema.vectors.items():
            if spec.kind == "sparse":
                sparse[name] = models.SparseVectorParams(modifier=models.Modifier.IDF if spec.idf else None)
            else:
                multi = models.MultiVectorConfig(comparator=models.MultiVectorComparator.MAX_SIM) \
                    if spec.kind == "multivector" else None
                dense[name] = models.VectorParams(size=spec.dim, distance=distances[spec.distance],
                                                  multivector_config=multi)
        self.client.create_collection(self.physical, vectors_config=dense, sparse_vectors_config=sparse,
                                      metadata={SCHEMA_KEY: schema.model_dump(mode="json"), GENERATION_KEY: generation})

    def _write(self, records: list[Prepared]) -> dict[str, str]:
        from qdrant_client import models

        points = [models.PointStruct(id=r.id, vector={name: _vector(v) for name, v in r.vectors.items()},
                                     payload={**r.metadata, TEXT: r.text}) for r in records]
        self.client.upsert(self.physical, points=points, wait=True)
        return {}

    def _delete_ids(self, ids: list[str]) -> None:
        from qdrant_client import models

        self.client.delete(self.physical, models.PointIdsList(points=ids), wait=True)

    def _delete_where(self, where: Node | None) -> None:
        from qdrant_client import models

        self.client.delete(self.physical, models.FilterSelector(filter=to_qdrant_filter(where)), wait=True)

    def _search(self, request: SearchRequest) -> list[Hit]:
        from qdrant_client import models

        flt = to_qdrant_filter(request.where) if request.where else None
        if len(request.vectors) == 1:
            (name, vector), = request.vectors.items()
            response = self.client.query_points(self.physical, query=_vector(vector), using=name,
                                                query_filter=flt, limit=request.limit, with_payload=True)
            square = self.schema.vectors[name].distance == "l2"
        else:
            depth = request.limit * PREFETCH_FACTOR
            prefetch = [models.Prefetch(query=_vector(v), using=name, filter=flt, limit=depth)
                        for name, v in request.vectors.items()]
            response = self.client.query_points(self.physical, prefetch=prefetch,
                                                query=models.FusionQuery(fusion=models.Fusion.RRF),
                                                query_filter=flt, limit=request.limit, with_payload=True)
            square = False
        hits = []
        for point in response.points:
            payload = dict(point.payload or {})
            text = payload.pop(TEXT, "")
            score = -(point.score ** 2) if square else point.score  # Euclid reports the L2 distance
            hits.append(Hit(id=str(point.id), score=float(score), text=text, metadata=payload))
        return hits

    def _get(self, ids: list[str]) -> list[Stored]:
        points = self.client.retrieve(self.physical, ids=ids, with_payload=True, with_vectors=False)
        out = []
        for point in points:
            payload = dict(point.payload or {})
            out.append(Stored(str(point.id), payload.pop(TEXT, ""), payload))
        return out

    def _count(self) -> int:
        return self.client.count(self.physical, exact=True).count

    def _drop(self) -> None:
        self.client.delete_collection(self.physical)

    def _close(self) -> None:
        self.client.close()

    def _is_backend_failure(self, error: Exception) -> bool:
        import httpx
        from qdrant_client.http.exceptions import ResponseHandlingException

        unreachable = (httpx.TransportError, ResponseHandlingException)
        return super()._is_backend_failure(error) or isinstance(error, unreachable)


def _vector(value: np.ndarray | tuple[np.ndarray, np.ndarray]) -> Any:
    from qdrant_client import models

    if isinstance(value, tuple):
        indices, values = value
        return models.SparseVector(indices=indices.tolist(), values=values.tolist())
    return value.tolist()


def to_qdrant_filter(node: Node | None) -> Any:
    """The filter as a qdrant `models.Filter` (dotted fields are Qdrant's nested payload keys)."""
    from qdrant_client import models

    if node is None:
        return None
    if isinstance(node, Condition):
        if node.op in ("$gt", "$gte", "$lt", "$lte"):
            bound = {node.op[1:]: node.value}
            return models.Filter(must=[models.FieldCondition(key=node.field, range=models.Range(**bound))])
        values = node.value if isinstance(node.value, tuple) else (node.value,)
        match = models.Filter(should=[_equals(node.field, v) for v in values]) if len(values) > 1 \
            else _equals(node.field, values[0])
        return models.Filter(must_not=[match]) if node.op in ("$ne", "$nin") else models.Filter(must=[match])
    parts = [to_qdrant_filter(part) for part in node.parts]
    return models.Filter(must=parts) if isinstance(node, And) else models.Filter(should=parts)


def _equals(key: str, value: Any) -> Any:
    """Qdrant matches str / bool exactly; numbers (int or float payloads alike) by a closed range."""
    from qdrant_client import models

    if isinstance(value, (str, bool)):
        return models.FieldCondition(key=key, match=models.MatchValue(value=value))
    return models.FieldCondition(key=key, range=models.Range(gte=value, lte=value))
