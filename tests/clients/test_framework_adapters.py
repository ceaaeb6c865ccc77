"""sie.integrations' LangChain and LlamaIndex adapters inside the frameworks' own chains (no LLM): a retriever
over a query pipeline served by `sie serve --pipelines`, and rerankers over `score`; each answer is the
server's own (the pipeline's REST answer, the native score route) for the same query."""

from __future__ import annotations

import os
import subprocess
import textwrap

import pytest
from client_settings import KEY, MINILM
from servers import SIE, Server

compat = pytest.mark.compat
QUERY = "how many vacation days carry over"
DOCS = {"leave.md": "Vacation days: up to five unused days carry over into the next year.\n\n"
                    "Sick leave does not carry over.",
        "security.md": "Rotate API keys every ninety days.\n\nNever paste keys into chat.",
        "expenses.md": "Submit expenses within thirty days.\n\nReceipts are required above fifty euros."}


@pytest.fixture(scope="module")
def pipelines(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pipelines")
    (folder / "docs").mkdir()
    for name, text in DOCS.items():
        (folder / "docs" / name).write_text(text)
    (folder / "ingest.yaml").write_text(textwrap.dedent(f"""\
        name: handbook
        source: {{type: files, root: ./docs}}
        steps:
          - chunk: {{by: paragraphs, size: 1}}
          - encode: {{model: {MINILM}}}
        sinks:
          - {{type: lancedb, uri: ./lance, collection: handbook}}
    """))
    (folder / "search.yaml").write_text(textwrap.dedent(f"""\
        name: handbook-search
        kind: query
        deadline_ms: 60000          # the default budget (a few seconds) is for serving, not a loaded CI machine
        steps:
          - encode: {{model: {MINILM}}}
          - search: {{sink: {{type: lancedb, uri: ./lance, collection: handbook}}, limit: 6}}
          - rerank: {{model: {MINILM}, top_k: 4}}
          - trim: {{max_tokens: 40}}
    """))
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SIE_CPU_PRECISION": "fp32", "SIE_THREADS": "1"}
    ran = subprocess.run([SIE, "run", str(folder / "ingest.yaml")], env=env, capture_output=True, text=True,
                         timeout=300)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    server = Server({"SIE_CPU_PRECISION": "fp32", "SIE_THREADS": "1", "SIE_API_KEYS": KEY,
                     "SIE_TEST_LOG_DIR": str(folder)}, ("--pipelines", str(folder), "--preload", MINILM))
    yield server
    server.stop()


def pipeline_answer(server) -> list[dict]:
    with server.client() as c:
        r = c.post("/v1/pipelines/handbook-search/query", json={"query": QUERY})
    assert r.status_code == 200, r.text
    return r.json()["results"]


def native_ranking(server, query: str, texts: list[str]) -> list[tuple[int, float]]:
    with server.client() as c:
        r = c.post(f"/v1/score/{MINILM}", json={"query": {"text": query}, "items": [{"text": t} for t in texts]})
    return [(i["index"], i["score"]) for i in r.json()["items"]]


@compat("sie adapters", "langchain-core", "sie.integrations.langchain.SieQueryRetriever in a Runnable chain")
def test_langchain_retriever_over_a_query_pipeline(pipelines):
    from langchain_core.runnables import RunnableLambda

    from sie.integrations.langchain import SieQueryRetriever

    expected = pipeline_answer(pipelines)
    assert expected and "carry over" in expected[0]["text"]
    retriever = SieQueryRetriever(url=pipelines.url, pipeline="handbook-search", api_key=KEY)
    chain = retriever | RunnableLambda(lambda docs: [(d.page_content, d.metadata) for d in docs])
    got = chain.invoke(QUERY)
    assert [t for t, _ in got] == [h["text"] for h in expected]
    for (_, meta), hit in zip(got, expected):
        assert meta["score"] == pytest.approx(hit["score"]) and meta["tokens"] == hit["tokens"] > 0
        assert meta["source"] == hit["metadata"]["source"] and meta["rerank_score"] is not None
    limited = SieQueryRetriever(url=pipelines.url, pipeline="handbook-search", api_key=KEY, max_tokens=12)
    assert sum(d.metadata["tokens"] for d in limited.invoke(QUERY)) <= 12


@compat("sie adapters", "langchain-core", "sie.integrations.langchain.SieReranker (BaseDocumentCompressor)")
def test_langchain_reranker(pipelines):
    import asyncio

    from langchain_core.documents import Document

    from sie.integrations.langchain import SieReranker

    texts = [t for doc in DOCS.values() for t in doc.split("\n\n")]
    docs = [Document(page_content=t, metadata={"n": i}) for i, t in enumerate(texts)]
    reranker = SieReranker(url=pipelines.url, model=MINILM, api_key=KEY, top_n=2)
    expected = native_ranking(pipelines, QUERY, texts)[:2]
    for kept in (reranker.compress_documents(docs, QUERY), asyncio.run(reranker.acompress_documents(docs, QUERY))):
        assert [(d.metadata["n"], pytest.approx(d.metadata["relevance_score"])) for d in kept] == expected


@compat("sie adapters", "llama-index-core", "sie.integrations.llamaindex.SieQueryRetriever + SieRerank in a "
                                            "RetrieverQueryEngine")
def test_llamaindex_retriever_and_rerank_in_a_query_engine(pipelines):
    from llama_index.core.llms.mock import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine
    from llama_index.core.response_synthesizers.no_text import NoText

    from sie.integrations.llamaindex import SieQueryRetriever, SieRerank

    expected = pipeline_answer(pipelines)
    retriever = SieQueryRetriever(pipelines.url, "handbook-search", api_key=KEY)
    nodes = retriever.retrieve(QUERY)
    assert [(n.node.get_content(), pytest.approx(n.score)) for n in nodes] == \
        [(h["text"], h["score"]) for h in expected]
    assert nodes[0].node.metadata["tokens"] == expected[0]["tokens"]
    rerank = SieRerank(url=pipelines.url, model=MINILM, api_key=KEY, top_n=1)
    # NoText synthesizes nothing; given its LLM directly (from_args leaves it to Settings.llm, i.e. OpenAI's).
    engine = RetrieverQueryEngine(retriever, response_synthesizer=NoText(llm=MockLLM()), node_postprocessors=[rerank])
    answer = engine.query(QUERY)
    best = native_ranking(pipelines, QUERY, [h["text"] for h in expected])[0]
    assert [(n.node.get_content(), pytest.approx(n.score)) for n in answer.source_nodes] == \
        [(expected[best[0]]["text"], best[1])]
