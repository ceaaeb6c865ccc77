"""Native routes: POST /v1/encode/{model}, /v1/score/{model}, /v1/extract/{model}, /v1/tokenize/{model}."""

from __future__ import annotations

import time

from fastapi import APIRouter, Path, Request

from sie.runtime.results import EncodedItem, Timing
from sie.server.errors import PayloadTooLarge, UnprocessableInput
from sie.server.http import name_model, parse, respond, timeout_ms, unless_disconnected
from sie.server.schemas import EncodeRequest, ExtractRequest, Item, ScoreRequest, TokenizeRequest

router = APIRouter()
MODEL_PATH = Path(description="Model name or alias (see GET /v1/models).",
                  examples=["sentence-transformers/all-MiniLM-L6-v2"])


def _body(model: type) -> dict:
    """OpenAPI request body for a route that decodes its own body (JSON or msgpack, same shape)."""
    return {"requestBody": {"required": True, "description": "JSON, or the same object as msgpack "
                            "(Content-Type: application/msgpack).",
                            "content": {"application/json": {"schema": inline_schema(model)}}}}


def inline_schema(model: type) -> dict:
    """The model's JSON Schema with its $defs inlined (they would not resolve inside an OpenAPI document)."""
    schema = model.model_json_schema()
    defs = schema.pop("$defs", {})

    def resolve(node):
        if isinstance(node, dict):
            ref = node.get("$ref", "")
            if ref.startswith("#/$defs/"):
                return resolve(defs[ref.split("/")[-1]])
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)


def check_limits(request: Request, texts: list[str], field: str = "items", *, chars: bool = True) -> None:
    """SIE_MAX_ITEMS, and unless `chars` is False, SIE_MAX_CHARS per item."""
    s = request.app.state.engine.settings
    if len(texts) > s.max_items:
        raise PayloadTooLarge(f"{field}: {len(texts)} items exceeds the limit of {s.max_items} per request "
                              f"(SIE_MAX_ITEMS); split the request", field=field)
    for i, t in enumerate(texts if chars else ()):
        if len(t) > s.max_chars:
            raise PayloadTooLarge(f"{field}[{i}]: {len(t)} characters exceeds the limit of {s.max_chars} "
                                  f"(SIE_MAX_CHARS)", field=f"{field}[{i}]")


def refuse_truncated(results: list, max_tokens: int, field: str, setting: str) -> None:
    """The compatibility routes' "do not truncate" options (TEI truncate=false, Cohere truncate=NONE): an
    input the engine had to cut is a 422 naming it, the limit and the option that refused it."""
    for i, r in enumerate(results):
        if r.truncated:
            raise UnprocessableInput(f"{field}[{i}]: longer than the model's limit of {max_tokens} tokens and "
                                     f"{setting}", field=f"{field}[{i}]")


def timing(t: Timing | None) -> dict | None:
    return None if t is None else {"queue_ms": t.queue_ms, "tokenize_ms": t.tokenize_ms, "compute_ms": t.compute_ms}


def encoded_item(item_id: str | None, r: EncodedItem) -> dict:
    """One item of an encode answer: only the outputs that were computed."""
    out: dict = {"id": item_id}
    if r.dense is not None:
        out["dense"] = r.dense
    if r.sparse is not None:
        out["sparse"] = {"indices": r.sparse.indices, "values": r.sparse.values}
        if r.sparse.tokens is not None:
            out["sparse"]["tokens"] = r.sparse.tokens
    if r.multivector is not None:
        out["multivector"] = r.multivector
    out.update(tokens=r.tokens, truncated=r.truncated, timing=timing(r.timing))
    return out


def _texts(items: list[Item]) -> list[str]:
    return [i.text for i in items]


async def encoded(request: Request, model: str, body: EncodeRequest) -> dict:
    """The encode answer (numpy arrays in it): the one implementation behind this route and the SIE SDK's
    (sie/server/sie_sdk.py, which only reshapes it)."""
    texts = _texts(body.items)
    check_limits(request, texts)
    p = body.params
    start = time.perf_counter()
    engine = request.app.state.engine
    results = await unless_disconnected(request, engine.encode(
        model, texts, is_query=p.is_query, dims=p.dims, dtype=p.dtype, normalize=p.normalize,
        instruction=p.instruction, output_types=p.output_types, sparse_top_k=p.sparse_top_k,
        sparse_tokens=p.sparse_tokens, admission="reject", priority=p.priority, timeout_ms=timeout_ms(request)))
    items = [encoded_item(it.id, r) for it, r in zip(body.items, results)]
    # The canonical name `name_model` resolved: the answer does not look the catalog up a third time.
    return {"model": request.state.model, "items": items, "usage": {"tokens": sum(r.tokens for r in results)},
            "timing": {"total_ms": round((time.perf_counter() - start) * 1000, 3)}}


async def scored(request: Request, model: str, body: ScoreRequest) -> dict:
    """The score answer, best first (shared with sie/server/sie_sdk.py like `encoded`)."""
    texts = _texts(body.items)
    check_limits(request, texts)
    check_limits(request, [body.query.text], field="query")
    engine = request.app.state.engine
    results = await unless_disconnected(request, engine.score(
        model, body.query.text, texts, top_k=body.params.top_k, instruction=body.params.instruction,
        admission="reject", priority=body.params.priority, timeout_ms=timeout_ms(request)))
    out = [{"index": r.index, "id": body.items[r.index].id, "score": r.score, "rank": r.rank,
            "tokens": r.tokens, "truncated": r.truncated, "timing": timing(r.timing)} for r in results]
    return {"model": request.state.model, "query_id": body.query.id, "items": out}


async def extracted(request: Request, model: str, body: ExtractRequest) -> dict:
    """The extract answer, one item per input (shared with sie/server/sie_sdk.py like `encoded`)."""
    texts = _texts(body.items)
    check_limits(request, texts)
    p = body.params
    engine = request.app.state.engine
    results = await unless_disconnected(request, engine.extract(
        model, texts, labels=p.labels, threshold=p.threshold, flat=p.flat, multi_label=p.multi_label,
        admission="reject", priority=p.priority, timeout_ms=timeout_ms(request)))
    out = [{"id": it.id,
            "entities": [{"text": e.text, "label": e.label, "score": e.score, "start": e.start, "end": e.end}
                         for e in r.entities],
            "classifications": [{"label": c.label, "score": c.score} for c in r.classifications],
            "tokens": r.tokens, "truncated": r.truncated, "timing": timing(r.timing)}
           for it, r in zip(body.items, results)]
    return {"model": request.state.model, "items": out}


@router.post("/v1/encode/{model:path}", openapi_extra=_body(EncodeRequest), tags=["native"])
async def encode(request: Request, model: str = MODEL_PATH):
    name_model(request, model)
    return respond(request, await encoded(request, model, await parse(request, EncodeRequest)))


@router.post("/v1/score/{model:path}", openapi_extra=_body(ScoreRequest), tags=["native"])
async def score(request: Request, model: str = MODEL_PATH):
    name_model(request, model)
    return respond(request, await scored(request, model, await parse(request, ScoreRequest)))


@router.post("/v1/extract/{model:path}", openapi_extra=_body(ExtractRequest), tags=["native"])
async def extract(request: Request, model: str = MODEL_PATH):
    name_model(request, model)
    return respond(request, await extracted(request, model, await parse(request, ExtractRequest)))


@router.post("/v1/tokenize/{model:path}", openapi_extra=_body(TokenizeRequest), tags=["native"])
async def tokenize(request: Request, model: str = MODEL_PATH):
    """Token counts per item, as the model's own tokenizer counts them (untruncated); ids and spans on request.

    SIE_MAX_CHARS does not apply: counting a text longer than the model reads is what this route is for (a
    chunker's or a token budget's); the body limit (SIE_MAX_BODY_BYTES) still does."""
    name_model(request, model)
    body = await parse(request, TokenizeRequest)
    texts = [i.text for i in body.items]
    check_limits(request, texts, chars=False)
    p = body.params
    engine = request.app.state.engine
    results = await unless_disconnected(request, engine.tokenize(
        model, texts, add_special_tokens=p.add_special_tokens, return_ids=p.return_ids,
        return_offsets=p.return_offsets, priority=p.priority, timeout_ms=timeout_ms(request)))
    items = []
    for it, r in zip(body.items, results):
        out: dict = {"id": it.id, "tokens": r.tokens}
        if r.ids is not None:
            out["ids"] = r.ids
        if r.offsets is not None:
            out["offsets"] = [list(o) for o in r.offsets]
        items.append(out)
    return respond(request, {"model": engine.card(model).name, "items": items,
                             "usage": {"tokens": sum(r.tokens for r in results)}})
