"""Hugging Face Text Embeddings Inference (TEI) routes, translated onto the Engine.

TEI serves one model per server and sie many, so every TEI route is served under a per-model base URL
(`/tei/{model}/embed`: a client configured with `http://host/tei/<model>` works unchanged) and at the root
for `SIE_DEFAULT_MODEL`. `POST /` (and `POST /tei/{model}`) goes where TEI sends it for the model's kind.
Errors have TEI's shape `{"error", "error_type"}` and its statuses. /tokenize and /decode need the model's
tokenizer, which the Engine does not expose as a primitive: they use the loaded model's (`Engine.model`).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Path, Request
from fastapi.responses import JSONResponse, Response

from sie import __version__
from sie.catalog import ModelCard
from sie.codec import decode_body
from sie.errors import InvalidInput, SieError, UnknownModel, UnsupportedCapability
from sie.runtime.kinds import extract_kind
from sie.runtime.scoring import cosine
from sie.server.errors import Draining, UnprocessableInput, http_status
from sie.server.http import EnvelopedRoute, name_model, parse, respond, timeout_ms, unless_disconnected
from sie.server.native import _body, check_limits, refuse_truncated
from sie.server.roles import is_query
from sie.server.tei_schemas import (
    DecodeRequest,
    Direction,
    EmbedAllRequest,
    EmbedRequest,
    EmbedSparseRequest,
    PredictRequest,
    RerankRequest,
    SimilarityParameters,
    SimilarityRequest,
    TokenizeRequest,
)


class Empty(InvalidInput):
    code = "empty"


# sie's status (sie.server.errors.http_status) → (TEI's status, TEI's error_type). TEI answers a model of the
# wrong kind with 424 "Backend".
def _tei_error(err: SieError) -> Response:
    sie_status = http_status(err)
    if err.code == "empty":
        status, kind = 400, "Empty"
    elif isinstance(err, UnsupportedCapability) or sie_status in (500, 502):
        status, kind = 424, "Backend"
    elif sie_status in (400, 422):
        status, kind = 422, "Validation"
    elif sie_status == 413:
        status, kind = 413, "Validation"
    elif sie_status == 429:
        status, kind = 429, "Overloaded"
    elif sie_status == 503:
        status, kind = 503, "Unhealthy"
    else:  # 401, 403, 404, 499: cases TEI does not have; sie's status, TEI's shape
        status, kind = sie_status, "Validation"
    headers = {"Retry-After": str(max(1, math.ceil(err.retry_after)))} if err.retry_after is not None else None
    return JSONResponse({"error": err.message, "error_type": kind}, status_code=status, headers=headers)


class TeiRoute(EnvelopedRoute):
    """A route whose errors (its own, its auth dependency's, body validation) take TEI's shape."""

    envelope = staticmethod(lambda request, err: _tei_error(err))


router = APIRouter(route_class=TeiRoute)
public = APIRouter(route_class=TeiRoute)   # /health needs no key, as in TEI
MODEL_PATH = Path(description="Model name or alias: the TEI base URL of a model is /tei/{model}.")
Handler = Callable[[Request, str], Awaitable[Response]]


# -- shared steps ----------------------------------------------------------------------------------
def _texts(request: Request, inputs: str | list[str]) -> list[str]:
    texts = [inputs] if isinstance(inputs, str) else inputs
    if not texts:
        raise Empty("inputs: the list is empty; send at least one text", field="inputs")
    check_limits(request, texts, field="inputs")
    return texts


def _right_only(direction: Direction, field: str = "truncation_direction") -> None:
    if direction.lower() != "right":
        raise UnprocessableInput(f"{field}: 'left' is not supported; sie truncates inputs at the right (the end)",
                                 field=field)


def _check_truncation(card: ModelCard, results: list, truncate: bool | None, field: str = "inputs") -> None:
    """TEI's truncate=false refuses over-long inputs (true, and TEI's default auto-truncate, cut them)."""
    if truncate is False:
        refuse_truncated(results, card.max_tokens, field, "truncate is false; send truncate: true or a shorter text")


async def _encode(request: Request, model: str, texts: list[str], body, **options) -> list:
    _right_only(body.truncation_direction)
    engine = request.app.state.engine
    results = await unless_disconnected(request, engine.encode(
        model, texts, is_query=is_query(body.prompt_name, "prompt_name"), admission="reject",
        timeout_ms=timeout_ms(request), **options))
    _check_truncation(engine.card(model), results, body.truncate)
    return results


def _require(card: ModelCard, output: str, route: str) -> None:
    enc = card.capabilities.encode
    if enc is None or getattr(enc, output) is None:
        raise UnsupportedCapability(f"model: '{card.name}' has no {output} output, which {route} returns; "
                                    f"pick a model that has one (see `sie models`)", field="model")


def kind(card: ModelCard) -> str:
    """The route TEI's `POST /` serves for this model (TEI: embed, embed_sparse for SPLADE, rerank, predict)."""
    enc, caps = card.capabilities.encode, card.capabilities
    if enc is not None and enc.dense is not None:
        return "embed"
    if enc is not None and enc.sparse is not None:
        return "embed_sparse"
    if caps.score is not None:
        return "rerank"
    if caps.extract is not None and extract_kind(card).classifies:
        return "predict"
    if enc is not None:
        return "embed_all"
    raise UnsupportedCapability(f"model: '{card.name}' extracts entities, which no TEI route returns; use "
                                f"POST /v1/extract/{card.name}", field="model")


async def _loaded(request: Request, model: str):
    """The loaded model (loading it if needed) off the event loop: /tokenize and /decode use its tokenizer."""
    return await asyncio.get_running_loop().run_in_executor(None, request.app.state.engine.model, model)


# -- the routes ------------------------------------------------------------------------------------
async def embed(request: Request, model: str) -> Response:
    body = await parse(request, EmbedRequest)
    results = await _encode(request, model, _texts(request, body.inputs), body, output_types=["dense"],
                            dims=body.dimensions, normalize=body.normalize)
    return respond(request, [r.dense for r in results])


async def embed_sparse(request: Request, model: str) -> Response:
    body = await parse(request, EmbedSparseRequest)
    _require(request.app.state.engine.card(model), "sparse", "/embed_sparse")
    results = await _encode(request, model, _texts(request, body.inputs), body, output_types=["sparse"])
    return respond(request, [[{"index": int(i), "value": float(v)} for i, v in zip(r.sparse.indices, r.sparse.values)]
                             for r in results])


async def embed_all(request: Request, model: str) -> Response:
    """TEI returns every token's hidden state; sie returns the per-token vectors of a multivector model."""
    body = await parse(request, EmbedAllRequest)
    _require(request.app.state.engine.card(model), "multivector", "/embed_all")
    results = await _encode(request, model, _texts(request, body.inputs), body, output_types=["multivector"])
    return respond(request, [r.multivector for r in results])


async def rerank(request: Request, model: str) -> Response:
    body = await parse(request, RerankRequest)
    if not body.texts:
        raise Empty("texts: the list is empty; send at least one text", field="texts")
    if body.raw_scores:
        raise UnprocessableInput("raw_scores: not supported; scores are the card's relevance (e.g. the sigmoid of a "
                                 "cross-encoder's logit), and raw logits are not exposed", field="raw_scores")
    _right_only(body.truncation_direction)
    check_limits(request, body.texts, field="texts")
    check_limits(request, [body.query], field="query")
    engine = request.app.state.engine
    results = await unless_disconnected(request, engine.score(model, body.query, body.texts, admission="reject",
                                                              timeout_ms=timeout_ms(request)))
    _check_truncation(engine.card(model), sorted(results, key=lambda r: r.index), body.truncate, field="texts")
    out = []
    for r in results:
        rank = {"index": r.index, "score": r.score}
        if body.return_text:
            rank["text"] = body.texts[r.index]
        out.append(rank)
    return respond(request, out)


def _predict_texts(inputs: str | list[str] | list[list[str]]) -> tuple[list[str], bool]:
    """(texts, single). TEI reads a flat list as ONE text pair and [[text], ...] as a batch."""
    if isinstance(inputs, str):
        return [inputs], True
    if inputs and all(isinstance(x, str) for x in inputs):
        if len(inputs) == 1:
            return list(inputs), True
        raise UnprocessableInput("inputs: text pairs ([a, b]) are not supported; send a text or a batch [[text], ...]",
                                 field="inputs")
    texts = []
    for i, x in enumerate(inputs):
        if not isinstance(x, list) or len(x) != 1:
            raise UnprocessableInput(f"inputs[{i}]: text pairs are not supported; each batch entry is [text]",
                                     field=f"inputs[{i}]")
        texts.append(x[0])
    return texts, False


async def predict(request: Request, model: str) -> Response:
    """A classifier's score for every label: the card's zero-shot classes over its own labels."""
    body = await parse(request, PredictRequest)
    texts, single = _predict_texts(body.inputs)
    texts = _texts(request, texts)
    if body.raw_scores:
        raise UnprocessableInput("raw_scores: not supported; scores are the card's class probabilities",
                                 field="raw_scores")
    _right_only(body.truncation_direction)
    engine = request.app.state.engine
    card = engine.card(model)
    spec = card.capabilities.extract
    if spec is None or not extract_kind(card).classifies or not spec.labels:
        raise UnsupportedCapability(
            f"model: '{card.name}' is not a classifier with fixed labels (its card names none in extract.labels); "
            f"TEI's /predict has no labels field: use POST /v1/extract/{card.name} with labels", field="model")
    results = await unless_disconnected(request, engine.extract(model, texts, threshold=0.0, admission="reject",
                                                                timeout_ms=timeout_ms(request)))
    _check_truncation(card, results, body.truncate)
    out = [[{"score": c.score, "label": c.label} for c in r.classifications] for r in results]
    return respond(request, out[0] if single else out)


async def similarity(request: Request, model: str) -> Response:
    """Cosine of each sentence's embedding to the source sentence's, in the sentences' order."""
    body = await parse(request, SimilarityRequest)
    params = body.parameters or SimilarityParameters()
    sentences = body.inputs.sentences
    if not sentences:
        raise Empty("inputs.sentences: the list is empty; send at least one sentence", field="inputs.sentences")
    texts = _texts(request, [body.inputs.source_sentence, *sentences])
    results = await _encode(request, model, texts, params, output_types=["dense"])
    source = results[0].dense
    return respond(request, [cosine(source, r.dense) for r in results[1:]])


async def tokenize(request: Request, model: str) -> Response:
    body = await parse(request, TokenizeRequest)
    texts = _texts(request, body.inputs)
    card = request.app.state.engine.card(model)
    prefix = card.prompts.query if is_query(body.prompt_name, "prompt_name") else card.prompts.document
    loaded = await _loaded(request, model)
    texts = [prefix + t for t in texts]
    encodings = loaded.tokenizer.backend.encode_batch(texts, add_special_tokens=body.add_special_tokens)
    out = []
    for text, e in zip(texts, encodings):
        out.append([{"id": i, "text": token if special else text[start:stop], "special": bool(special),
                     "start": None if special else start, "stop": None if special else stop}
                    for i, token, special, (start, stop) in zip(e.ids, e.tokens, e.special_tokens_mask, e.offsets)])
    return respond(request, out)


async def decode(request: Request, model: str) -> Response:
    body = await parse(request, DecodeRequest)
    batch = body.ids if body.ids and isinstance(body.ids[0], list) else [body.ids]
    loaded = await _loaded(request, model)
    backend = loaded.tokenizer.backend
    vocab = backend.get_vocab_size(with_added_tokens=True)
    for b, ids in enumerate(batch):
        for i, t in enumerate(ids):
            if not 0 <= t < vocab:
                raise UnprocessableInput(f"ids[{b}][{i}]: {t} is not a token id of this model's vocabulary "
                                         f"(0..{vocab - 1})", field="ids")
    return respond(request, backend.decode_batch(batch, skip_special_tokens=body.skip_special_tokens))


async def root(request: Request, model: str) -> Response:
    """TEI's `POST /`: the model's kind picks the route; a `{"inputs": {"source_sentence", ...}}` body to an
    embedding model is a sentence-similarity request (huggingface_hub's `sentence_similarity` posts there)."""
    route = kind(request.app.state.engine.card(model))
    if route == "embed":
        try:
            data = decode_body(await request.body(), request.headers.get("content-type"))
        except ValueError:
            data = None
        if isinstance(data, dict) and isinstance(data.get("inputs"), dict):
            route = "similarity"
    return await POSTS[route](request, model)


async def info(request: Request, model: str) -> Response:
    engine = request.app.state.engine
    card, s = engine.card(model), engine.settings
    route = kind(card)
    if route == "rerank":
        model_type = {"reranker": {"id2label": {"0": "LABEL_0"}, "label2id": {"LABEL_0": 0}}}
    elif route == "predict":
        labels = card.capabilities.extract.labels
        model_type = {"classifier": {"id2label": {str(i): x for i, x in enumerate(labels)},
                                     "label2id": {x: i for i, x in enumerate(labels)}}}
    else:
        model_type = {"embedding": {"pooling": "splade" if route == "embed_sparse" else card.pooling}}
    precision = engine.model_state(card.name)["precision"] or (
        card.precision.cuda if engine.device.type == "cuda" else card.precision.cpu)
    return respond(request, {
        "model_id": card.name, "model_sha": None, "model_dtype": precision,
        "served_model_name": card.name, "model_type": model_type, "max_concurrent_requests": s.queue_capacity,
        "max_input_length": card.max_tokens, "max_batch_tokens": card.token_budget, "max_batch_requests": None,
        "max_client_batch_size": s.max_items, "auto_truncate": True, "tokenization_workers": s.tokenizer_threads,
        "version": __version__, "sha": None, "docker_label": None})


async def health(request: Request, model: str) -> Response:
    """200 while the model can serve; 503 when it failed to load or the server is draining."""
    state = request.app.state.engine.model_state(model)
    if request.app.state.draining:
        raise Draining("server: draining after SIGTERM", retry_after=5)
    if state["error"]:
        raise SieError(f"model: '{state['name']}' cannot serve: {state['error']}", code="model_unavailable")
    return Response(status_code=200)


POSTS: dict[str, Handler] = {"embed": embed, "embed_all": embed_all, "embed_sparse": embed_sparse,
                             "rerank": rerank, "predict": predict, "similarity": similarity,
                             "tokenize": tokenize, "decode": decode}
BODIES = {"embed": EmbedRequest, "embed_all": EmbedAllRequest, "embed_sparse": EmbedSparseRequest,
          "rerank": RerankRequest, "predict": PredictRequest, "similarity": SimilarityRequest,
          "tokenize": TokenizeRequest, "decode": DecodeRequest}


def default_model(request: Request) -> str:
    name = request.app.state.engine.settings.default_model
    if name is None:
        raise UnknownModel("SIE_DEFAULT_MODEL is not set, so the root TEI routes serve no model; set it, or use "
                           "the model's base URL /tei/{model}/ (e.g. /tei/all-MiniLM-L6-v2/embed)", field="model")
    return name


def _per_model(handler: Handler):
    async def route(request: Request, model: str = MODEL_PATH) -> Response:
        name_model(request, model)
        return await handler(request, model)
    return route


def _at_default(handler: Handler):
    async def route(request: Request) -> Response:
        model = default_model(request)
        name_model(request, model)
        return await handler(request, model)
    return route


# The per-model routes are in the OpenAPI schema; the root ones are the same handlers for the default model.
for _name, _handler in POSTS.items():
    router.add_api_route(f"/tei/{{model:path}}/{_name}", _per_model(_handler), methods=["POST"], tags=["tei"],
                         name=f"tei_{_name}", openapi_extra=_body(BODIES[_name]))
    router.add_api_route(f"/{_name}", _at_default(_handler), methods=["POST"], include_in_schema=False)
router.add_api_route("/tei/{model:path}/info", _per_model(info), methods=["GET"], tags=["tei"], name="tei_info")
router.add_api_route("/info", _at_default(info), methods=["GET"], include_in_schema=False)
public.add_api_route("/tei/{model:path}/health", _per_model(health), methods=["GET"], tags=["tei"],
                     name="tei_health")
public.add_api_route("/health", _at_default(health), methods=["GET"], include_in_schema=False)
# Last: `/tei/{model:path}` would also match `/tei/<model>/embed`.
router.add_api_route("/tei/{model:path}", _per_model(root), methods=["POST"], tags=["tei"], name="tei_root",
                     description="TEI's POST /: embed, embed_sparse, rerank or predict by the model's kind.")
router.add_api_route("/", _at_default(root), methods=["POST"], include_in_schema=False)
