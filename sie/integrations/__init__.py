"""sie-backed embedding functions in the conventions vector-database users already know.

- `sie.integrations.chroma.SieEmbeddingFunction`: a Chroma `EmbeddingFunction`, registered as "sie", with
  `name()` / `get_config()` / `build_from_config()` so a collection can be reopened from its stored config.
- `sie.integrations.lancedb.SieTextEmbeddings`: a LanceDB embedding-registry function, registered as "sie",
  for `SourceField()` / `VectorField()` schemas.

Both run on an engine: anything with `encode_sync(model, texts, *, is_query=..., dims=..., normalize=...)`
returning items with a `.dense` vector (`sie.Engine` in-process, or the HTTP client when `url` is set).
Import the submodule you need; each imports its database client.
"""
