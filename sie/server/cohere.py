"""Cohere-compatible POST /v1/embed, /v2/embed and /v2/rerank (today's /v1/rerank lives in compat.py).

`input_type` picks the card's query or document prompt (sie.server.roles). The embedding types are the
Engine's float vectors in Cohere's encodings: int8 and binary (packed sign bits) are the Engine's own
(`sie.models.vector_dtype`); uint8 is int8 shifted by 128 and Cohere's signed `binary` is the packed bytes
minus 128 (sentence-transformers' definitions of the same quantizations); base64 is little-endian float32.
"""

from __future__ import annotations

import base64
import uuid
from typing import Literal

import numpy as np
from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from sie.models.vector_dtype import encode_vectors
from sie.server.errors import UnprocessableInput
from sie.server.http import name_model, parse, respond, timeout_ms, unless_disconnected
from sie.server.native import _body, check_limits, refuse_truncated
from sie.server.roles import is_query

router = APIRouter()
EmbeddingType = Literal["float", "int8", "uint8", "binary", "ubinary", "base64"]


class CohereEmbedRequest(BaseModel):
    """Cohere's embed body (v1 and v2). Images and mixed `inputs` are not supported (text models)."""

    model: str
    texts: list[str] | None = Field(None, min_length=1)
    input_type: str | None = Field(None, description="search_query picks the card's query prompt; search_document, "
                                                     "classification, clustering (and none) the document one.")
    embedding_types: list[EmbeddingType] | None = Field(None, min_length=1)
    truncate: Literal["NONE", "START", "END"] | None = Field(
        None, description="END (default) cuts at the model's limit; NONE refuses longer texts; START is not supported.")
    output_dimension: int | None = Field(None, gt=0, description="Matryoshka width (models trained for it).")
    images: list | None = None
    inputs: list | None = None
    max_tokens: int | None = None


class CohereRerankRequest(BaseModel):
    model: str
    query: str
    documents: list[str] = Field(min_length=1)
    top_n: int | None = Field(None, gt=0)
    max_tokens_per_doc: int | None = None


def _unsupported(value: object, field: str, why: str) -> None:
    if value:
        raise UnprocessableInput(f"{field}: not supported; {why}", field=field)


def by_type(vectors: np.ndarray, types: list[str]) -> dict:
    out: dict = {}
    for t in dict.fromkeys(types):
        if t == "float":
            out[t] = vectors
        elif t == "int8":
            out[t] = encode_vectors(vectors, "int8")
        elif t == "uint8":
            out[t] = (encode_vectors(vectors, "int8").astype(np.int16) + 128).astype(np.uint8)
        elif t == "ubinary":
            out[t] = encode_vectors(vectors, "binary")
        elif t == "binary":
            out[t] = (encode_vectors(vectors, "binary").astype(np.int16) - 128).astype(np.int8)
        else:
            out[t] = [base64.b64encode(v.astype("<f4").tobytes()).decode() for v in vectors]
    return out


async def _embed(request: Request, version: int):
    body = await parse(request, CohereEmbedRequest)
    name_model(request, body.model)
    _unsupported(body.images, "images", "sie serves text models; send texts")
    _unsupported(body.inputs, "inputs", "send texts")
    _unsupported(body.max_tokens, "max_tokens", "texts are cut at the model's own limit (see GET /v1/models)")
    if body.truncate == "START":
        raise UnprocessableInput("truncate: START is not supported; sie cuts texts at the end (END)", field="truncate")
    if not body.texts:
        raise UnprocessableInput("texts: required; send a list of at least one text", field="texts")
    check_limits(request, body.texts, field="texts")
    engine = request.app.state.engine
    results = await unless_disconnected(request, engine.encode(
        body.model, body.texts, is_query=is_query(body.input_type, "input_type"), dims=body.output_dimension,
        output_types=["dense"], admission="reject", timeout_ms=timeout_ms(request)))
    if body.truncate == "NONE":
        refuse_truncated(results, engine.card(body.model).max_tokens, "texts", "truncate is NONE")
    vectors = np.stack([r.dense for r in results])
    tokens = sum(r.tokens for r in results)
    meta = {"api_version": {"version": str(version)}, "billed_units": {"input_tokens": tokens}}
    out = {"id": str(uuid.uuid4()), "texts": body.texts, "meta": meta}
    if version == 1 and body.embedding_types is None:
        return respond(request, {"response_type": "embeddings_floats", "embeddings": vectors, **out})
    return respond(request, {"response_type": "embeddings_by_type",
                             "embeddings": by_type(vectors, body.embedding_types or ["float"]), **out})


@router.post("/v1/embed", openapi_extra=_body(CohereEmbedRequest), tags=["cohere"])
async def embed_v1(request: Request):
    return await _embed(request, 1)


@router.post("/v2/embed", openapi_extra=_body(CohereEmbedRequest), tags=["cohere"])
async def embed_v2(request: Request):
    return await _embed(request, 2)


@router.post("/v2/rerank", openapi_extra=_body(CohereRerankRequest), tags=["cohere"])
async def rerank_v2(request: Request):
    body = await parse(request, CohereRerankRequest)
    name_model(request, body.model)
    _unsupported(body.max_tokens_per_doc, "max_tokens_per_doc", "documents are cut at the model's own limit")
    check_limits(request, body.documents, field="documents")
    check_limits(request, [body.query], field="query")
    engine = request.app.state.engine
    results = await unless_disconnected(request, engine.score(
        body.model, body.query, body.documents, top_k=body.top_n, admission="reject",
        timeout_ms=timeout_ms(request)))
    return respond(request, {"id": str(uuid.uuid4()),
                             "results": [{"index": r.index, "relevance_score": r.score} for r in results],
                             "meta": {"api_version": {"version": "2"}, "billed_units": {"search_units": 1}}})
