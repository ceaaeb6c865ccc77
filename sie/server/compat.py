"""OpenAI-compatible POST /v1/embeddings and Cohere/Jina-style POST /v1/rerank."""

from __future__ import annotations

import base64

import numpy as np
from fastapi import APIRouter, Request

from sie.errors import InvalidInput
from sie.server.errors import UnprocessableInput
from sie.server.http import name_model, parse, respond, timeout_ms, unless_disconnected
from sie.server.native import _body, check_limits
from sie.server.roles import is_query
from sie.server.schemas import EmbeddingsRequest, RerankDocument, RerankRequest

router = APIRouter()


@router.post("/v1/embeddings", openapi_extra=_body(EmbeddingsRequest), tags=["openai"])
async def embeddings(request: Request):
    body = await parse(request, EmbeddingsRequest)
    name_model(request, body.model)
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts:
        raise InvalidInput("input: the list is empty; send at least one string", field="input")
    check_limits(request, texts, field="input")
    engine = request.app.state.engine
    if body.input_type is not None and body.prompt_name is not None and body.input_type != body.prompt_name:
        raise UnprocessableInput("input_type, prompt_name: two names for the same choice disagree; send one",
                                 field="input_type")
    role = is_query(body.input_type or body.prompt_name, "input_type" if body.input_type else "prompt_name")
    results = await unless_disconnected(request, engine.encode(
        body.model, texts, is_query=role, dims=body.dimensions, admission="reject", priority=body.priority,
        timeout_ms=timeout_ms(request)))
    data = []
    for i, r in enumerate(results):
        vector = r.dense.astype(np.float32, copy=False)
        embedding = (base64.b64encode(vector.astype("<f4").tobytes()).decode() if body.encoding_format == "base64"
                     else vector)
        data.append({"object": "embedding", "index": i, "embedding": embedding})
    tokens = sum(r.tokens for r in results)
    return respond(request, {"object": "list", "data": data, "model": engine.card(body.model).name,
                             "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})


@router.post("/v1/rerank", openapi_extra=_body(RerankRequest), tags=["cohere"])
async def rerank(request: Request):
    body = await parse(request, RerankRequest)
    name_model(request, body.model)
    docs = [d.text if isinstance(d, RerankDocument) else d for d in body.documents]
    check_limits(request, docs, field="documents")
    engine = request.app.state.engine
    results = await unless_disconnected(request, engine.score(
        body.model, body.query, docs, top_k=body.top_n, admission="reject", priority=body.priority,
        timeout_ms=timeout_ms(request)))
    out = []
    for r in results:
        entry = {"index": r.index, "relevance_score": r.score}
        if body.return_documents:
            entry["document"] = {"text": docs[r.index]}
        out.append(entry)
    tokens = sum(r.tokens for r in results)
    return respond(request, {"model": engine.card(body.model).name, "results": out,
                             "meta": {"billed_units": {"search_units": 1}, "tokens": {"input_tokens": tokens}},
                             "usage": {"total_tokens": tokens}})
