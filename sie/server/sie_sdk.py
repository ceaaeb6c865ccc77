"""Superlinked's SIE SDK (`sie-sdk` 0.10.x, `SIEClient(url).encode / score / extract`) against sie unchanged.

The SDK calls the same paths as sie's native routes (`/v1/encode|score|extract/{model}`) with another body and
answer shape, and marks every request with `X-SIE-SDK-Version`. The routes here match only requests that carry
that header (`SdkRoute.matches`), so they sit in front of the native ones and sie's own clients keep today's
format. Each route only translates: the SDK's body → sie's request model, `sie/server/native.py`'s
`encoded` / `scored` / `extracted` (the one implementation), sie's answer → the SDK's shape:

- arrays as msgpack-numpy (`{nd, type, kind, shape, data}`, the SDK's only array decoding), inside
  `{"dense": {"values"}}`, `{"sparse": {"indices", "values"}}`, `{"multivector": {"values"}}`;
- score as `{"scores": [{item_id, score, rank}]}` (`item_id` "item-<i>" for an item sent without id, as SIE
  does); extract items with `entities`, `classifications` and empty `relations` / `objects`;
- `GET /v1/models` and `/v1/models/{model}` as SIE's ModelInfo (`dims` a dict per output, `state`), which
  the SDK's `list_models` / `get_model` (and sie-lancedb's `ndims`) read;
- errors as `{"error": {code, message, param}}` with SIE's UPPER-CASE codes, also in `X-SIE-Error-Code` (the
  SDK retries on MODEL_LOADING / RESOURCE_EXHAUSTED / QUEUE_FULL by these), 400 for input of the wrong shape
  (SIE has no 422), and 503 for a full queue, as SIE answers.

What sie does not serve is refused by name (400 INVALID_INPUT naming the field): image / audio / video /
document items, `output_dtype` uint8 / ubinary, extract's `output_schema` and `instruction`, SIE-only
`options` (muvera, lora, ...). The options sie adds are accepted in `options` (see `*_OPTIONS`).
"""

from __future__ import annotations

import math
from typing import Any, Literal

import msgpack
import msgpack_numpy
from fastapi import APIRouter, Path, Request
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.routing import Match
from starlette.types import Scope

from sie.codec import JSON, MSGPACK, encode_body, wants_msgpack
from sie.errors import InvalidInput, SieError
from sie.server import native
from sie.server.errors import UnprocessableInput, http_status, invalid
from sie.server.http import EnvelopedRoute, name_model, parse
from sie.server.schemas import EncodeRequest, ExtractRequest, ScoreRequest

SDK_VERSION_HEADER = "X-SIE-SDK-Version"
ERROR_CODE_HEADER = "X-SIE-Error-Code"
_HEADER = SDK_VERSION_HEADER.lower().encode()
# sie's code → SIE's name for the same condition, where it is not just the upper-case of sie's.
CODES = {"internal": "INTERNAL_ERROR"}
# sie's code → the status SIE answers it with, where sie's differs (the SDK retries both; on giving up it
# raises what SIE's 503 raises, ServerError, not RateLimitError).
STATUSES = {"queue_full": 503}
MEDIA = ("images", "audio", "video", "document", "multivector")


class SdkRoute(EnvelopedRoute):
    """Matches only requests with X-SIE-SDK-Version (others fall through to the native route on the same path);
    its errors, its auth dependency's and body validation's take the SDK's envelope."""

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        if not any(name == _HEADER for name, _ in scope.get("headers", ())):
            return Match.NONE, {}
        return super().matches(scope)

    envelope = staticmethod(lambda request, err: error_response(request, err))


router = APIRouter(route_class=SdkRoute)
MODEL_PATH = Path(description="Model name or alias (see GET /v1/models).")


def error_response(request: Request, err: SieError) -> Response:
    code = CODES.get(err.code, err.code.upper())
    status = 400 if isinstance(err, UnprocessableInput) else STATUSES.get(err.code, http_status(err))
    headers = {ERROR_CODE_HEADER: code}
    if err.retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(err.retry_after)))
    msgpack_out = _wants_msgpack(request)
    return Response(encode_body({"error": {"code": code, "message": err.message, "param": err.field}}, msgpack_out),
                    status_code=status, headers=headers, media_type=MSGPACK if msgpack_out else JSON)


def _wants_msgpack(request: Request) -> bool:
    """msgpack unless the client asks for JSON only (the SDK always asks for msgpack; SIE's default too)."""
    accept = request.headers.get("accept")
    return wants_msgpack(accept) or JSON not in (accept or "")


def respond(request: Request, payload: dict) -> Response:
    if _wants_msgpack(request):
        body = msgpack.packb(payload, default=msgpack_numpy.encode, use_bin_type=True)
        return Response(body, media_type=MSGPACK)
    return Response(encode_body(payload, False), media_type=JSON)


# -- the SDK's request bodies ------------------------------------------------------------------------------
class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SdkItem(_Body):
    id: str | None = None
    text: str = Field(min_length=1)
    metadata: dict[str, Any] | None = Field(None, description="Accepted and not used, as SIE's text models do.")


class _Items(_Body):
    """A body with `items` (and maybe a `query`): an image, audio, video, document or multivector item is
    refused by its name before field validation calls it an unknown field."""

    @model_validator(mode="before")
    @classmethod
    def _text_only(cls, value: Any) -> Any:
        if isinstance(value, dict):
            named = [("query", value.get("query"))] if "query" in value else []
            items = value.get("items")
            named += [(f"items[{i}]", it) for i, it in enumerate(items)] if isinstance(items, list) else []
            for where, item in named:
                media = [k for k in MEDIA if isinstance(item, dict) and k in item]
                if media:
                    raise InvalidInput(f"{where}.{media[0]}: sie serves text models; send the item's text",
                                       field=f"{where}.{media[0]}")
        return value


class SdkEncodeParams(_Body):
    output_types: list[Literal["dense", "sparse", "multivector"]] | None = Field(None, min_length=1)
    output_dtype: str | None = None
    instruction: str | None = None
    options: dict[str, Any] | None = None


class SdkEncodeRequest(_Items):
    items: list[SdkItem] = Field(min_length=1)
    params: SdkEncodeParams | None = None


class SdkScoreRequest(_Items):
    query: SdkItem
    items: list[SdkItem] = Field(min_length=1)
    instruction: str | None = None
    options: dict[str, Any] | None = None


class SdkExtractParams(_Body):
    labels: list[str] | None = None
    output_schema: dict[str, Any] | None = None
    instruction: str | None = None
    options: dict[str, Any] | None = None


class SdkExtractRequest(_Items):
    items: list[SdkItem] = Field(min_length=1)
    params: SdkExtractParams | None = None


# `options` keys each route takes: the SDK's own (is_query, normalize, profile "default") and sie's params.
ENCODE_OPTIONS = ("is_query", "normalize", "profile", "dims", "sparse_top_k", "sparse_tokens", "priority")
SCORE_OPTIONS = ("profile", "top_k", "priority")
EXTRACT_OPTIONS = ("profile", "threshold", "flat", "multi_label", "priority")
DTYPES = ("float32", "float16", "int8", "binary")


def _options(options: dict[str, Any] | None, allowed: tuple[str, ...], field: str) -> dict[str, Any]:
    options = dict(options or {})
    for key in options:
        if key not in allowed:
            raise InvalidInput(f"{field}.{key}: not an option sie serves (it takes: {', '.join(allowed)})",
                               field=f"{field}.{key}")
    profile = options.pop("profile", "default")
    if profile != "default":
        raise InvalidInput(f"{field}.profile: sie has one profile per model, 'default' (got {profile!r})",
                           field=f"{field}.profile")
    return options


def _items(items: list[SdkItem]) -> list[dict]:
    return [{"id": i.id, "text": i.text} for i in items]


def encode_request(body: SdkEncodeRequest) -> EncodeRequest:
    p = body.params or SdkEncodeParams()
    params = _options(p.options, ENCODE_OPTIONS, "params.options")
    if p.output_dtype is not None:
        if p.output_dtype not in DTYPES:
            raise InvalidInput(f"params.output_dtype: sie encodes {', '.join(DTYPES)} (got {p.output_dtype!r})",
                               field="params.output_dtype")
        params["dtype"] = p.output_dtype
    if p.output_types is not None:
        params["output_types"] = p.output_types
    if p.instruction is not None:
        params["instruction"] = p.instruction
    return _native(EncodeRequest, {"items": _items(body.items), "params": params})


def score_request(body: SdkScoreRequest) -> ScoreRequest:
    params = _options(body.options, SCORE_OPTIONS, "options")
    if body.instruction is not None:
        params["instruction"] = body.instruction
    return _native(ScoreRequest, {"query": _items([body.query])[0], "items": _items(body.items), "params": params})


def extract_request(body: SdkExtractRequest) -> ExtractRequest:
    p = body.params or SdkExtractParams()
    for name in ("output_schema", "instruction"):
        if getattr(p, name) is not None:
            raise InvalidInput(f"params.{name}: sie's extract models take labels, not {name.replace('_', ' ')} "
                               f"(structured extraction is not served)", field=f"params.{name}")
    params = _options(p.options, EXTRACT_OPTIONS, "params.options")
    if p.labels is not None:
        params["labels"] = p.labels
    return _native(ExtractRequest, {"items": _items(body.items), "params": params})


def _native(model: type[BaseModel], data: dict) -> Any:
    """sie's request model; an option value it refuses (a bad `dims`) names the SDK's field."""
    try:
        return model.model_validate(data)
    except ValidationError as e:  # re-rooted under the SDK's `options`
        first = e.errors()[0]
        loc = tuple(first["loc"])
        if loc[:1] == ("params",) and model is not ScoreRequest:
            loc = ("params", "options", *loc[1:])
        elif loc[:1] == ("params",):
            loc = ("options", *loc[1:])
        raise invalid([{**first, "loc": loc}]) from None


# -- sie's answers in the SDK's shape ---------------------------------------------------------------------
def _dtype(values) -> str:
    return "binary" if values.dtype.name == "uint8" else values.dtype.name


def encode_answer(payload: dict) -> dict:
    items = []
    for item in payload["items"]:
        out: dict = {} if item["id"] is None else {"id": item["id"]}
        if "dense" in item:
            v = item["dense"]
            out["dense"] = {"dims": v.shape[-1] * (8 if _dtype(v) == "binary" else 1), "dtype": _dtype(v),
                            "values": v}
        if "sparse" in item:
            out["sparse"] = {"dims": None, "dtype": _dtype(item["sparse"]["values"]), **item["sparse"]}
        if "multivector" in item:
            v = item["multivector"]
            out["multivector"] = {"token_dims": v.shape[-1], "num_tokens": v.shape[0], "dtype": _dtype(v),
                                  "values": v}
        items.append(out)
    return {"model": payload["model"], "items": items, "timing": payload["timing"],
            "usage": {"input_tokens": payload["usage"]["tokens"]}}


def score_answer(payload: dict) -> dict:
    scores = [{"item_id": r["id"] if r["id"] is not None else f"item-{r['index']}", "score": r["score"],
               "rank": r["rank"]} for r in payload["items"]]
    return {"model": payload["model"], "query_id": payload["query_id"], "scores": scores,
            "usage": {"input_tokens": sum(r["tokens"] for r in payload["items"])}}


def extract_answer(payload: dict) -> dict:
    items = [{**({} if r["id"] is None else {"id": r["id"]}), "entities": r["entities"],
              "classifications": r["classifications"], "relations": [], "objects": []} for r in payload["items"]]
    return {"model": payload["model"], "items": items,
            "usage": {"input_tokens": sum(r["tokens"] for r in payload["items"])}}


# -- the routes: translate, call the native implementation, translate back --------------------------------
@router.post("/v1/encode/{model:path}", include_in_schema=False)
async def encode(request: Request, model: str = MODEL_PATH):
    name_model(request, model)
    body = encode_request(await parse(request, SdkEncodeRequest))
    return respond(request, encode_answer(await native.encoded(request, model, body)))


@router.post("/v1/score/{model:path}", include_in_schema=False)
async def score(request: Request, model: str = MODEL_PATH):
    name_model(request, model)
    body = score_request(await parse(request, SdkScoreRequest))
    return respond(request, score_answer(await native.scored(request, model, body)))


@router.post("/v1/extract/{model:path}", include_in_schema=False)
async def extract(request: Request, model: str = MODEL_PATH):
    name_model(request, model)
    body = extract_request(await parse(request, SdkExtractRequest))
    return respond(request, extract_answer(await native.extracted(request, model, body)))


# sie's pool tier → SIE's model state (a swapped-out model answers at once: SIE has no host tier).
STATES = {"unloaded": "available", "loading": "loading", "device": "loaded", "host": "loaded", "failed": "failed"}


def model_info(request: Request, name: str) -> dict:
    engine = request.app.state.engine
    card = engine.catalog.get(name)
    state = engine.model_state(card.name)
    enc = card.capabilities.encode
    outputs = [k for k in ("dense", "sparse", "multivector") if enc is not None and getattr(enc, k) is not None]
    dims = {k: getattr(enc, k).dims for k in ("dense", "multivector") if k in outputs}
    return {"name": card.name, "loaded": STATES[state["state"]] == "loaded", "state": STATES[state["state"]],
            "last_error": None if state["error"] is None else {"message": state["error"]},
            "inputs": ["text"], "outputs": outputs, "dims": dims, "max_sequence_length": card.max_tokens,
            "revision": None, "profiles": {"default": {}}}


@router.get("/v1/models", include_in_schema=False)
async def models(request: Request):
    return respond(request, {"models": [model_info(request, card.name) for card in request.app.state.engine.catalog]})


@router.get("/v1/models/{model:path}", include_in_schema=False)
async def one_model(request: Request, model: str = MODEL_PATH):
    return respond(request, model_info(request, model))
