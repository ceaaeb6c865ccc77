"""LangChain adapters over a live `sie serve`: a retriever over a query pipeline (retrieve → rerank → trim
to a token budget, served with `--pipelines`) and a document compressor over `score` (rerank).

    retriever = SieQueryRetriever(url="http://host:8080", pipeline="handbook-search", max_tokens=2000)
    docs = retriever.invoke("how many vacation days carry over?")   # Documents, best first
    compressor = SieReranker(url="http://host:8080", model="BAAI/bge-reranker-base", top_n=3)

Each Document's metadata is its record's metadata plus `id`, `score`, `rerank_score`, `first_stage_score`
and `tokens` (its length in the pipeline's token count).
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun, Callbacks
from langchain_core.documents import BaseDocumentCompressor, Document
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict, PrivateAttr

from sie.client import SieClient
from sie.integrations.hits import hit_metadata


class _Remote:
    """The SieClient of an adapter, made from its url and api_key on first use."""

    def client(self) -> SieClient:
        if self._client is None:
            self._client = SieClient(self.url, api_key=self.api_key)
        return self._client


class SieQueryRetriever(_Remote, BaseRetriever):
    url: str
    pipeline: str
    api_key: str | None = None
    max_tokens: int | None = None
    limit: int | None = None
    where: dict | None = None
    _client: SieClient | None = PrivateAttr(None)

    def _options(self) -> dict:
        return {"max_tokens": self.max_tokens, "limit": self.limit, "where": self.where}

    def _documents(self, answer: dict) -> list[Document]:
        return [Document(page_content=h["text"], id=h.get("id"), metadata=hit_metadata(h)) for h in answer["results"]]

    def _get_relevant_documents(self, query: str, *, run_manager: CallbackManagerForRetrieverRun) -> list[Document]:
        return self._documents(self.client().query_sync(self.pipeline, query, **self._options()))

    async def _aget_relevant_documents(self, query: str, *,
                                       run_manager: AsyncCallbackManagerForRetrieverRun) -> list[Document]:
        return self._documents(await self.client().query(self.pipeline, query, **self._options()))


class SieReranker(_Remote, BaseDocumentCompressor):
    """Keeps the `top_n` documents most relevant to the query (a model's `score`), best first, with
    `relevance_score` in their metadata."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    url: str
    model: str
    api_key: str | None = None
    top_n: int | None = 3
    _client: SieClient | None = PrivateAttr(None)

    def _ranked(self, documents: Sequence[Document], scored) -> list[Document]:
        return [Document(page_content=documents[s.index].page_content, id=documents[s.index].id,
                         metadata={**documents[s.index].metadata, "relevance_score": s.score}) for s in scored]

    def compress_documents(self, documents: Sequence[Document], query: str,
                           callbacks: Callbacks | None = None) -> Sequence[Document]:
        if not documents:
            return []
        return self._ranked(documents, self.client().score_sync(
            self.model, query, [d.page_content for d in documents], top_k=self.top_n))

    async def acompress_documents(self, documents: Sequence[Document], query: str,
                                  callbacks: Callbacks | None = None) -> Sequence[Document]:
        if not documents:
            return []
        return self._ranked(documents, await self.client().score(
            self.model, query, [d.page_content for d in documents], top_k=self.top_n))
