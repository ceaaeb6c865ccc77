"""connectors: one Sink contract over Chroma, Qdrant, Weaviate and LanceDB.

Start at `connectors.base` (the contract), `connectors.records` (schema and records), `connectors.filters`
(the `where` language) and `connectors.ids` (record ids). Database clients are imported only when a sink of
that type is opened. This room imports nothing from `sie` or `pipelines`.
"""

from connectors.base import Hit, ItemResult, Sink, Stored, WriteResult
from connectors.config import SinkConfig
from connectors.errors import ConnectorError
from connectors.ids import SIE_NAMESPACE, canonical_json, content_hash, record_id
from connectors.metadata import HASH, KEY, MODEL, RESERVED_KEYS, VERSION
from connectors.records import Record, Schema, SparseVector, VectorSpec, make_record
from connectors.registry import SINKS, load_config, open_sink, sink_class

__all__ = [
    "HASH", "KEY", "MODEL", "RESERVED_KEYS", "SIE_NAMESPACE", "SINKS", "VERSION",
    "ConnectorError", "Hit", "ItemResult", "Record", "Schema", "Sink", "SinkConfig", "SparseVector", "Stored",
    "VectorSpec", "WriteResult", "canonical_json", "content_hash", "load_config", "make_record", "open_sink",
    "record_id", "sink_class",
]
