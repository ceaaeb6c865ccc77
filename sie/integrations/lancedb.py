"""A LanceDB embedding-registry function backed by sie, registered under the name "sie".

    from lancedb.embeddings import get_registry
    from lancedb.pydantic import LanceModel, Vector
    import sie.integrations.lancedb  # registers "sie"

    embed = get_registry().get("sie").create(name="sentence-transformers/all-MiniLM-L6-v2")

    class Doc(LanceModel):
        text: str = embed.SourceField()
        vector: Vector(embed.ndims()) = embed.VectorField()

    table = db.create_table("docs", schema=Doc)
    table.add([{"text": "..."}])                 # embedded by sie
    table.search("a question").limit(5)         # the query is embedded by sie too

LanceDB stores the `create(...)` arguments in the table metadata and rebuilds the function from them when
the table is reopened, so they hold only `name` (the model), `url` (None: the in-process engine, see
`sie.integrations.engine`), `dims` and `normalize`. Retries are off by default (`max_retries=0`): an
in-process engine has no transient failures; set it when `url` points at a server.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from lancedb.embeddings import TextEmbeddingFunction, register
from pydantic import PrivateAttr

from sie.integrations.engine import DEFAULT_MODEL, EncodeEngine, dense_dims, encode, engine_for


@register("sie")
class SieTextEmbeddings(TextEmbeddingFunction):
    name: str = DEFAULT_MODEL
    url: str | None = None
    dims: int | None = None
    normalize: bool | None = None
    max_retries: int = 0

    _engine: Any = PrivateAttr(default=None)

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._ndims = None

    def use_engine(self, engine: EncodeEngine) -> SieTextEmbeddings:
        """Run on this engine object instead of the one `url` names (not stored in the table)."""
        self._engine = engine
        self._ndims = None
        return self

    @property
    def engine(self) -> EncodeEngine:
        if self._engine is None:
            self._engine = engine_for(self.url)
        return self._engine

    def ndims(self) -> int:
        if self._ndims is None:
            self._ndims = dense_dims(self.engine, self.name, self.dims)
        return self._ndims

    def generate_embeddings(self, texts: list[str] | np.ndarray) -> list[np.ndarray]:
        return encode(self.engine, self.name, list(texts), is_query=False, dims=self.dims, normalize=self.normalize)

    def compute_query_embeddings(self, query: str, *args: Any, **kwargs: Any) -> list[np.ndarray]:
        return encode(self.engine, self.name, [query], is_query=True, dims=self.dims, normalize=self.normalize)
