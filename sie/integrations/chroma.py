"""A Chroma `EmbeddingFunction` backed by sie, registered under the name "sie".

    from sie.integrations.chroma import SieEmbeddingFunction
    collection = client.create_collection("docs", embedding_function=SieEmbeddingFunction())
    collection.add(ids=["1"], documents=["..."])          # embedded by sie
    client.get_collection("docs").query(query_texts=["..."])  # reopened from the stored config

Chroma stores `get_config()` with the collection and calls `build_from_config()` when the collection is
opened without an embedding function, so the config holds only what rebuilds the function: the model,
the engine `url` (None: in-process, see `sie.integrations.engine`), `dims` and `normalize`.
"""

from __future__ import annotations

from typing import Any

from chromadb.api.types import Documents, EmbeddingFunction, Embeddings, Space
from chromadb.utils.embedding_functions import register_embedding_function

from sie.integrations.engine import DEFAULT_MODEL, EncodeEngine, encode, engine_for

CONFIG_KEYS = ("model", "url", "dims", "normalize")


@register_embedding_function
class SieEmbeddingFunction(EmbeddingFunction[Documents]):
    def __init__(self, model: str = DEFAULT_MODEL, *, url: str | None = None, dims: int | None = None,
                 normalize: bool | None = None, engine: EncodeEngine | None = None) -> None:
        self.validate_config({"model": model, "url": url, "dims": dims, "normalize": normalize})
        self.model, self.url, self.dims, self.normalize = model, url, dims, normalize
        self._engine = engine

    @property
    def engine(self) -> EncodeEngine:
        if self._engine is None:
            self._engine = engine_for(self.url)
        return self._engine

    def __call__(self, input: Documents) -> Embeddings:
        return encode(self.engine, self.model, list(input), is_query=False, dims=self.dims, normalize=self.normalize)

    def embed_query(self, input: Documents) -> Embeddings:
        return encode(self.engine, self.model, list(input), is_query=True, dims=self.dims, normalize=self.normalize)

    @staticmethod
    def name() -> str:
        return "sie"

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]

    def get_config(self) -> dict[str, Any]:
        return {"model": self.model, "url": self.url, "dims": self.dims, "normalize": self.normalize}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> SieEmbeddingFunction:
        SieEmbeddingFunction.validate_config(config)
        return SieEmbeddingFunction(**{k: config[k] for k in CONFIG_KEYS if k in config})

    @staticmethod
    def validate_config(config: dict[str, Any]) -> None:
        unknown = sorted(set(config) - set(CONFIG_KEYS))
        if unknown:
            raise ValueError(f"sie embedding function: unknown config key {unknown[0]!r}; "
                             f"valid keys: {', '.join(CONFIG_KEYS)}")
        model = config.get("model", DEFAULT_MODEL)
        if not isinstance(model, str) or not model:
            raise ValueError(f"sie embedding function: model must be a non-empty string, got {model!r}")
        dims = config.get("dims")
        if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims <= 0):
            raise ValueError(f"sie embedding function: dims must be a positive integer, got {dims!r}")
        url = config.get("url")
        if url is not None and not isinstance(url, str):
            raise ValueError(f"sie embedding function: url must be a string, got {url!r}")
        if config.get("normalize") not in (None, True, False):
            raise ValueError(f"sie embedding function: normalize must be true, false or null, "
                             f"got {config['normalize']!r}")

    def validate_config_update(self, old_config: dict[str, Any], new_config: dict[str, Any]) -> None:
        for key in ("model", "dims", "normalize"):
            if key in new_config and new_config[key] != old_config.get(key):
                raise ValueError(f"sie embedding function: changing {key} from {old_config.get(key)!r} to "
                                 f"{new_config[key]!r} would mix incompatible vectors in one collection")
