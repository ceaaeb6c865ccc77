"""sie in the conventions vector-database and framework users already know.

- `sie.integrations.chroma.SieEmbeddingFunction`: a Chroma `EmbeddingFunction`, registered as "sie", with
  `name()` / `get_config()` / `build_from_config()` so a collection can be reopened from its stored config.
- `sie.integrations.lancedb.SieTextEmbeddings`: a LanceDB embedding-registry function, registered as "sie",
  for `SourceField()` / `VectorField()` schemas.
- `sie.integrations.langchain`: `SieQueryRetriever` (a `BaseRetriever` over a query pipeline that `sie serve
  --pipelines` serves) and `SieReranker` (a `BaseDocumentCompressor` over `score`).
- `sie.integrations.llamaindex`: `SieQueryRetriever` (a `BaseRetriever`) and `SieRerank` (a node postprocessor).

The embedding functions run on an engine: anything with `encode_sync(model, texts, *, is_query=..., dims=...,
normalize=...)` returning items with a `.dense` vector (`sie.Engine` in-process, or the HTTP client when `url`
is set); the framework adapters on a live server (`sie.client.SieClient`). Import the submodule you need;
each imports its database or framework.
"""
