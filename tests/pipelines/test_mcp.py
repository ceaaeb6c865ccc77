"""Query pipelines as Model Context Protocol tools: a real MCP client (the official SDK) starts
`sie mcp --pipelines DIR` over stdio, lists the tools and calls one within a token budget."""

from __future__ import annotations

import asyncio
import json

from pipeline_helpers import ingest, write_pipeline
from servers import SIE


def test_an_agent_lists_and_calls_the_search_tool(tmp_path, engine, engine_server, cli_env):
    from mcp import Client
    from mcp.client.stdio import StdioServerParameters

    from pipelines.sources import posted_documents
    from pipelines.spec import load_pipeline

    ingest_path = write_pipeline(tmp_path / "ingest", """\
        name: notes
        source: {type: records}
        steps:
          - encode: {model: tiny/embed}
        sinks:
          - {type: lancedb, uri: ../lance, collection: notes}
    """)
    texts = ["rotate the api keys every month", "backups run every night at two", "the on-call rota is weekly"]
    records = [{"id": f"n{i}", "text": t} for i, t in enumerate(texts)]
    docs = posted_documents(load_pipeline(ingest_path).source, records)
    assert ingest(ingest_path, engine, documents=docs).state == "succeeded"
    write_pipeline(tmp_path, f"""\
        name: notes-search
        kind: query
        description: Search the team's operational notes
        engine: {engine_server.url}
        steps:
          - encode: {{model: tiny/embed}}
          - search: {{sink: {{type: lancedb, uri: ./lance, collection: notes}}, limit: 3}}
          - trim: {{max_tokens: 1000}}
    """, "search.yaml")

    async def agent() -> tuple[list, object]:
        params = StdioServerParameters(command=SIE, args=["mcp", "--pipelines", str(tmp_path)], env=cli_env)
        async with Client(params, read_timeout_seconds=120) as client:
            tools = (await client.list_tools()).tools
            result = await client.call_tool("notes_search", {"query": "rotate the api keys every month",
                                                             "max_tokens": 8})
            return tools, result

    tools, result = asyncio.run(asyncio.wait_for(agent(), timeout=150))
    (tool,) = tools
    assert tool.name == "notes_search" and tool.description == "Search the team's operational notes"
    assert set(tool.input_schema["properties"]) == {"query", "max_tokens", "limit"}
    assert not result.is_error, result
    answer = result.structured_content or json.loads(result.content[0].text)
    assert answer["results"][0]["text"] == "rotate the api keys every month"
    assert answer["tokens"]["budget"] == 8 and 0 < answer["tokens"]["after"] <= 8 < answer["tokens"]["before"]
