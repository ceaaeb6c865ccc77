"""LlamaIndex adapters over a live `sie serve`: a retriever over a query pipeline (served with `--pipelines`)
and a node postprocessor over `score` (rerank).

    retriever = SieQueryRetriever(url="http://host:8080", pipeline="handbook-search", max_tokens=2000)
    nodes = retriever.retrieve("how many vacation days carry over?")   # NodeWithScore, best first
    rerank = SieRerank(url="http://host:8080", model="BAAI/bge-reranker-base", top_n=3)

A node's metadata is its record's metadata plus `id`, `score`, `rerank_score`, `first_stage_score` and
`tokens`; its score is the pipeline's final score (the reranker's, where the pipeline reranks).
"""

from __future__ import annotations

from llama_index.core.bridge.pydantic import PrivateAttr
from llama_index.core.postprocessor.types import BaseNodePostprocessor
from llama_index.core.retrievers import BaseRetriever
from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode

from sie.client import SieClient
from sie.integrations.hits import hit_metadata


class SieQueryRetriever(BaseRetriever):
    def __init__(self, url: str, pipeline: str, *, api_key: str | None = None, max_tokens: int | None = None,
                 limit: int | None = None, where: dict | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.pipeline = pipeline
        self.options = {"max_tokens": max_tokens, "limit": limit, "where": where}
        self.client = SieClient(url, api_key=api_key)

    def _nodes(self, answer: dict) -> list[NodeWithScore]:
        return [NodeWithScore(node=TextNode(text=h["text"], id_=h.get("id") or None, metadata=hit_metadata(h)),
                              score=h["score"]) for h in answer["results"]]

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self._nodes(self.client.query_sync(self.pipeline, query_bundle.query_str, **self.options))

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        return self._nodes(await self.client.query(self.pipeline, query_bundle.query_str, **self.options))


class SieRerank(BaseNodePostprocessor):
    """Keeps the `top_n` nodes most relevant to the query (a model's `score`), best first, scored by it."""

    url: str
    model: str
    api_key: str | None = None
    top_n: int | None = 3
    _client: SieClient | None = PrivateAttr(None)

    @classmethod
    def class_name(cls) -> str:
        return "SieRerank"

    def _postprocess_nodes(self, nodes: list[NodeWithScore], query_bundle: QueryBundle | None = None
                           ) -> list[NodeWithScore]:
        if query_bundle is None:
            raise ValueError("SieRerank needs the query: call postprocess_nodes(nodes, query_str=...)")
        if not nodes:
            return []
        if self._client is None:
            self._client = SieClient(self.url, api_key=self.api_key)
        scored = self._client.score_sync(self.model, query_bundle.query_str,
                                         [n.node.get_content() for n in nodes], top_k=self.top_n)
        return [NodeWithScore(node=nodes[s.index].node, score=s.score) for s in scored]
