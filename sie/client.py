"""The SDK: the Engine's methods over HTTP. One async implementation; `*_sync` are thin wrappers.

    client = SieClient("http://127.0.0.1:8080", api_key=...)
    items = await client.encode("BAAI/bge-small-en-v1.5", texts, is_query=True)
    items = client.encode_sync("all-MiniLM-L6-v2", texts)

It speaks msgpack by default (vectors as raw bytes), splits inputs into requests under the server's
limits (read once from GET /v1/info), retries 429/503 honouring Retry-After, sends the model name as
the `X-SIE-Model` header (for model-affinity routing in front of a cluster), and raises the same
`SieError` (code, message, field, status) the server sent.

Scheduling, as on the Engine: `priority="batch"` puts the work in the server's bulk lane (default
interactive); `timeout_ms` is one budget for the whole call, retries included: every request carries
what is left of it in the `X-SIE-Timeout-Ms` header (the server drops the work and answers 504 when it
runs out), and the client raises DeadlineExceeded once nothing is left; `admission="reject"` raises the
server's 429 (queue_full) at once instead of waiting it out with retries.

Options are checked here before anything is sent, by the same code as the Engine's (sie.call_options):
an option a method does not take, or a lane / admission / timeout_ms out of range, is the InvalidInput the
in-process Engine raises, word for word.
"""

from __future__ import annotations

import asyncio
import random
import time
from typing import Any

import httpx
import numpy as np

from sie.background_loop import BackgroundLoop
from sie.call_options import check_flags, check_lane, check_scheduling, check_timeout_ms, reject_unknown
from sie.codec import JSON, MSGPACK, TIMEOUT_HEADER, decode_body, encode_body, unpack_array
from sie.errors import DeadlineExceeded, InvalidInput, SieError, UnprocessableInput
from sie.runtime.results import (
    Classification,
    EncodedItem,
    Entity,
    ExtractedItem,
    ScoredItem,
    SparseVector,
    Timing,
    TokenizedText,
)

DEFAULT_MAX_ITEMS = 256


class SieClient:
    def __init__(self, url: str, *, api_key: str | None = None, timeout: float = 120.0, max_retries: int = 6,
                 use_msgpack: bool = True, max_items: int | None = None, concurrency: int = 4) -> None:
        self.url = url.rstrip("/")
        self.api_key, self.timeout, self.max_retries = api_key, timeout, max_retries
        self.content_type = MSGPACK if use_msgpack else JSON
        self._max_items = max_items
        self._concurrency = concurrency
        self._http: dict[asyncio.AbstractEventLoop, httpx.AsyncClient] = {}
        self._sync = BackgroundLoop("sie-client-sync")

    # -- the Engine protocol ----------------------------------------------------------------------
    async def encode(self, model: str, items: list[str], *, is_query: bool = False, dims: int | None = None,
                     dtype: str = "float32", normalize: bool | None = None, instruction: str | None = None,
                     output_types: list[str] | None = None, sparse_top_k: int | None = None,
                     sparse_tokens: bool = False, admission: str = "wait", priority: str = "interactive",
                     timeout_ms: float | None = None, **unknown: Any) -> list[EncodedItem]:
        lane, deadline, wait = _scheduling("encode", unknown, priority, timeout_ms, admission)
        params = {"is_query": is_query, "dims": dims, "dtype": dtype, "normalize": normalize,
                  "instruction": instruction, "output_types": output_types, "sparse_top_k": sparse_top_k,
                  "sparse_tokens": sparse_tokens or None, **lane}
        chunks = await self._chunked(items, lambda part: self._post(
            f"/v1/encode/{model}", {"items": [{"text": t} for t in part], "params": _compact(params)}, model,
            deadline, wait))
        return [EncodedItem(dense=None if it.get("dense") is None else _array(it["dense"], dtype),
                            tokens=it["tokens"], truncated=it["truncated"], sparse=_sparse(it.get("sparse")),
                            multivector=None if it.get("multivector") is None else unpack_array(it["multivector"]),
                            timing=_timing(it.get("timing")))
                for body in chunks for it in body["items"]]

    async def score(self, model: str, query: str, items: list[str], *, top_k: int | None = None,
                    instruction: str | None = None, admission: str = "wait", priority: str = "interactive",
                    timeout_ms: float | None = None, **unknown: Any) -> list[ScoredItem]:
        lane, deadline, wait = _scheduling("score", unknown, priority, timeout_ms, admission)
        size = await self._limit()
        bodies = await self._chunked(items, lambda part: self._post(
            f"/v1/score/{model}", {"query": {"text": query}, "items": [{"text": t} for t in part],
                                   "params": _compact({"instruction": instruction, **lane})}, model,
            deadline, wait))
        scored = []
        for n, body in enumerate(bodies):  # re-rank globally: every chunk was ranked on its own
            for it in body["items"]:
                scored.append((it["score"], n * size + it["index"], it))
        scored.sort(key=lambda x: (-x[0], x[1]))
        if top_k is not None:
            scored = scored[:top_k]
        return [ScoredItem(index=i, score=s, rank=r, tokens=it.get("tokens", 0), truncated=it.get("truncated", False),
                           timing=_timing(it.get("timing"))) for r, (s, i, it) in enumerate(scored)]

    async def extract(self, model: str, items: list[str], *, labels: list[str] | None = None,
                      threshold: float | None = None, flat: bool = True, multi_label: bool = False,
                      admission: str = "wait", priority: str = "interactive", timeout_ms: float | None = None,
                      **unknown: Any) -> list[ExtractedItem]:
        lane, deadline, wait = _scheduling("extract", unknown, priority, timeout_ms, admission)
        params = {"labels": labels, "threshold": threshold, "flat": flat, "multi_label": multi_label, **lane}
        bodies = await self._chunked(items, lambda part: self._post(
            f"/v1/extract/{model}", {"items": [{"text": t} for t in part], "params": _compact(params)}, model,
            deadline, wait))
        return [ExtractedItem(entities=[Entity(**e) for e in it["entities"]],
                              classifications=[Classification(**c) for c in it["classifications"]],
                              tokens=it.get("tokens", 0), truncated=it.get("truncated", False),
                              timing=_timing(it.get("timing")))
                for body in bodies for it in body["items"]]

    async def models(self) -> list[dict]:
        return (await self._request("GET", "/v1/models"))["data"]

    async def count_tokens(self, model: str, texts: list[str], *, add_special_tokens: bool = True,
                           priority: str = "interactive", timeout_ms: float | None = None,
                           **unknown: Any) -> list[int]:
        reject_unknown("count_tokens", unknown)
        return [t.tokens for t in await self._tokenize(model, texts, priority, timeout_ms, add_special_tokens)]

    async def tokenize(self, model: str, texts: list[str], *, add_special_tokens: bool = True,
                       return_ids: bool = False, return_offsets: bool = False, priority: str = "interactive",
                       timeout_ms: float | None = None, **unknown: Any) -> list[TokenizedText]:
        reject_unknown("tokenize", unknown)
        return await self._tokenize(model, texts, priority, timeout_ms, add_special_tokens, return_ids,
                                    return_offsets)

    async def _tokenize(self, model: str, texts: list[str], priority: str, timeout_ms: float | None,
                        add_special_tokens: bool, return_ids: bool = False,
                        return_offsets: bool = False) -> list[TokenizedText]:
        lane = _lane(check_lane(priority))
        deadline = _deadline(check_timeout_ms(timeout_ms))
        check_flags(add_special_tokens=add_special_tokens, return_ids=return_ids, return_offsets=return_offsets)
        params = {"add_special_tokens": add_special_tokens, "return_ids": return_ids,
                  "return_offsets": return_offsets, **lane}
        bodies = await self._chunked(texts, lambda part: self._post(
            f"/v1/tokenize/{model}", {"items": [{"text": t} for t in part], "params": params}, model, deadline))
        return [TokenizedText(it["tokens"], it.get("ids"),
                              None if it.get("offsets") is None else [tuple(o) for o in it["offsets"]])
                for body in bodies for it in body["items"]]

    async def query(self, pipeline: str, text: str, *, max_tokens: int | None = None, limit: int | None = None,
                    where: dict | None = None) -> dict:
        """A query pipeline served by `sie serve --pipelines`: {results: [{id, text, score, ..., metadata,
        tokens}], tokens: {before, after, budget}}."""
        payload = _compact({"query": text, "max_tokens": max_tokens, "limit": limit, "where": where})
        return await self._request("POST", f"/v1/pipelines/{pipeline}/query", payload)

    def encode_sync(self, model: str, items: list[str], **options: Any) -> list[EncodedItem]:
        return self._sync.run(self.encode(model, items, **options))

    def score_sync(self, model: str, query: str, items: list[str], **options: Any) -> list[ScoredItem]:
        return self._sync.run(self.score(model, query, items, **options))

    def extract_sync(self, model: str, items: list[str], **options: Any) -> list[ExtractedItem]:
        return self._sync.run(self.extract(model, items, **options))

    def models_sync(self) -> list[dict]:
        return self._sync.run(self.models())

    def count_tokens_sync(self, model: str, texts: list[str], **options: Any) -> list[int]:
        return self._sync.run(self.count_tokens(model, texts, **options))

    def tokenize_sync(self, model: str, texts: list[str], **options: Any) -> list[TokenizedText]:
        return self._sync.run(self.tokenize(model, texts, **options))

    def query_sync(self, pipeline: str, text: str, **options: Any) -> dict:
        return self._sync.run(self.query(pipeline, text, **options))

    async def aclose(self) -> None:
        http = self._http.pop(asyncio.get_running_loop(), None)
        if http is not None:
            await http.aclose()

    def close(self) -> None:
        if self._sync._loop is not None:
            self._sync.run(self.aclose())
        self._sync.close()

    # -- plumbing ---------------------------------------------------------------------------------
    async def _limit(self) -> int:
        if self._max_items is None:
            try:
                info = await self._request("GET", "/v1/info")
                self._max_items = int(info["limits"]["max_items"])
            except SieError:
                self._max_items = DEFAULT_MAX_ITEMS
        return self._max_items

    async def _chunked(self, items: list[str], send) -> list[dict]:
        if isinstance(items, str):
            items = [items]  # the server would refuse it; a lone string is almost always meant as one item
        size = await self._limit()
        parts = [items[i:i + size] for i in range(0, len(items), size)] or [items]
        gate = asyncio.Semaphore(self._concurrency)

        async def one(part):
            async with gate:
                return await send(part)

        return list(await asyncio.gather(*(one(p) for p in parts)))

    def _client(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        http = self._http.get(loop)
        if http is None:
            headers = {"accept": self.content_type}
            if self.api_key:
                headers["authorization"] = f"Bearer {self.api_key}"
            http = self._http[loop] = httpx.AsyncClient(base_url=self.url, headers=headers, timeout=self.timeout)
        return http

    async def _post(self, path: str, payload: dict, model: str, deadline: float | None = None,
                    wait: bool = True) -> dict:
        return await self._request("POST", path, payload, {"x-sie-model": model}, deadline, wait)

    async def _request(self, method: str, path: str, payload: dict | None = None,
                       headers: dict | None = None, deadline: float | None = None, wait: bool = True) -> dict:
        """`wait`: a 429 (queue full) is retried after its Retry-After, as admission="wait" waits; 503s
        (loading, draining) are retried either way."""
        body = None
        headers = dict(headers or {})
        if payload is not None:
            body = encode_body(payload, self.content_type == MSGPACK)
            headers["content-type"] = self.content_type
        for attempt in range(self.max_retries + 1):
            timeout: float | None = self.timeout
            if deadline is not None:  # each attempt carries what is left of the budget
                left = _left(deadline, path)
                headers[TIMEOUT_HEADER] = f"{left * 1000:.0f}"
                timeout = min(self.timeout, left + 1.0)  # the server answers 504 at the deadline itself
            try:
                resp = await self._client().request(method, path, content=body, headers=headers, timeout=timeout)
            except httpx.TransportError as e:
                if deadline is not None and isinstance(e, httpx.TimeoutException):
                    _left(deadline, path)
                if attempt == self.max_retries:
                    raise SieError(f"server: cannot reach {self.url}: {type(e).__name__}: {e}",
                                   code="unreachable") from None
                await _pause(_backoff(attempt, None), deadline)
                continue
            if (resp.status_code == 503 or (resp.status_code == 429 and wait)) and attempt < self.max_retries:
                await _pause(_backoff(attempt, resp.headers.get("retry-after")), deadline)
                continue
            data = decode_body(resp.content, resp.headers.get("content-type")) if resp.content else {}
            if resp.status_code >= 400:
                err = data.get("error", {}) if isinstance(data, dict) else {}
                retry = resp.headers.get("retry-after")
                code = err.get("code", "http_error")
                # The one code answered with two statuses (see sie.server.errors.http_status): keep which it was.
                kind = UnprocessableInput if resp.status_code == 422 and code == InvalidInput.code else SieError
                raise kind(err.get("message", f"HTTP {resp.status_code}"), code=code,
                           field=err.get("field"), retry_after=float(retry) if retry else None)
            return data
        raise AssertionError("unreachable")


def _lane(priority: str) -> dict:
    """Only a non-default lane is sent, so requests stay valid for servers that predate lanes."""
    return {} if priority == "interactive" else {"priority": priority}


def _scheduling(method: str, unknown: dict, priority: str, timeout_ms: float | None,
                admission: str) -> tuple[dict, float | None, bool]:
    """The Engine's checks of a call's options, then (lane params, deadline, wait on a full queue)."""
    reject_unknown(method, unknown)
    lane, timeout_ms, wait = check_scheduling(priority, timeout_ms, admission)
    return _lane(lane), _deadline(timeout_ms), wait


def _deadline(timeout_ms: float | None) -> float | None:
    return None if timeout_ms is None else time.monotonic() + timeout_ms / 1000


def _left(deadline: float, path: str) -> float:
    left = deadline - time.monotonic()
    if left <= 0.001:
        raise DeadlineExceeded(f"deadline: {path} got no answer within its timeout_ms (retries included)",
                               field="timeout_ms")
    return left


async def _pause(seconds: float, deadline: float | None) -> None:
    """Back off, but never past the deadline (the next attempt then reports it)."""
    await asyncio.sleep(seconds if deadline is None else min(seconds, max(0.0, deadline - time.monotonic())))


def _backoff(attempt: int, retry_after: str | None) -> float:
    if retry_after:
        try:
            return float(retry_after)
        except ValueError:
            pass
    return min(10.0, 0.2 * 2**attempt) * (0.5 + random.random())


def _compact(params: dict) -> dict:
    return {k: v for k, v in params.items() if v is not None}


def _array(value: Any, dtype: str) -> np.ndarray:
    arr = unpack_array(value)
    wire = {"float32": np.float32, "float16": np.float16, "int8": np.int8, "binary": np.uint8}[dtype]
    return arr.astype(wire, copy=False)


def _sparse(value: Any) -> SparseVector | None:
    if value is None:
        return None
    return SparseVector(indices=unpack_array(value["indices"]).astype(np.int32, copy=False),
                        values=unpack_array(value["values"]).astype(np.float32, copy=False),
                        tokens=value.get("tokens"))


def _timing(value: dict | None) -> Timing | None:
    return None if not value else Timing(**value)


Client = SieClient  # the name the Chroma/LanceDB integrations import
