"""Engine settings: defaults, overridden by a YAML config file, overridden by SIE_* environment variables.

Secrets (API keys) are read only from the environment, never from the file.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from sie.errors import SieError


class Settings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    device: str = Field("auto", description="auto | cpu | cuda | cuda:N")
    catalog_dirs: list[str] = Field(default_factory=list, description="Extra folders of model cards.")
    strict_catalog: bool = Field(True, description="A broken card stops start-up (off in `sie serve`: "
                                                    "that model answers 502 and the rest serve).")
    allow_downloads: bool = Field(False, description="Fetch missing HF weights (off: local cache only).")
    cpu_precision: Literal["fp32", "mixed", "int8"] | None = Field(
        None, description="Overrides every card's CPU precision.")
    cpu_token_budget: int = Field(
        2048, gt=0, description="Cap on tokens per CPU forward pass: small passes stay in cache "
                                "(measured here: 2048 tokens ~20% faster than 16384).")
    threads: int | None = Field(None, gt=0, description="torch intra-op threads (default: torch's choice).")
    tokenizer_threads: int = Field(2, gt=0, description="Threads per lane that tokenize requests off the event loop.")
    # -- model pool
    memory_budget: str | None = Field(
        None, description="Device budget: bytes ('8GiB'), fraction (0.5) or '50%'. Default: 90% of free GPU "
                          "memory on CUDA, half the RAM on CPU.")
    host_memory_budget: str | None = Field(
        None, description="Host-RAM tier for evicted models. Default: 30% of RAM on CUDA, 0 (off) on CPU.")
    preload: list[str] = Field(default_factory=list, description="Models loaded at start-up.")
    pin: list[str] = Field(default_factory=list, description="Models never evicted (also preloaded).")
    idle_timeout: float | None = Field(None, gt=0, description="Evict models idle this many seconds.")
    load_wait_timeout: float = Field(120.0, gt=0, description="How long a request waits for its model to "
                                                               "load before a 503 with Retry-After; also how long "
                                                               "a bring-up waits for busy models to drain so it "
                                                               "can evict them (then 503 ResourceExhausted).")
    # -- batcher
    queue_capacity: int = Field(4096, gt=0, description="Sequences each lane (interactive, batch) of a model's "
                                                         "queue holds before 429.")
    max_queue_wait: float | None = Field(
        2.0, gt=0, description="Refuse (429) work that would wait longer than this in a model's queue, "
                               "judged from its measured throughput: bounds the latency of admitted requests.")
    batch_slice: float = Field(
        0.0, ge=0, description="While latency-bound work is about (deadlines; interactive work beside bulk), "
                                 "a less urgent batch is cut to what its model computes in this many seconds, "
                                 "so the newcomer waits one slice, not a full batch (0: off).")
    batching: bool = Field(True, description="Merge sequences of different requests into one forward pass "
                                             "(off: one request per pass; for measuring what batching buys).")
    # -- server limits (each violation names its limit)
    max_body_bytes: int = Field(16 << 20, gt=0, description="Largest request body (413 above).")
    max_items: int = Field(2048, gt=0, description="Most items per request.")
    max_chars: int = Field(100_000, gt=0, description="Most characters per item.")
    drain_seconds: float = Field(30.0, ge=0, description="On SIGTERM: how long in-flight work may finish.")
    # -- compatibility routes
    default_model: str | None = Field(
        None, description="The model TEI's routes at the root (/embed, /rerank, POST / ...) serve; every model is "
                          "also served under /tei/{model}/.")

    @classmethod
    def load(cls, path: str | Path | None = None, env: dict[str, str] | None = None) -> Settings:
        """File (path or $SIE_CONFIG) first, then SIE_<FIELD> variables on top."""
        env = dict(os.environ if env is None else env)
        data: dict = {}
        path = path or env.get("SIE_CONFIG")
        if path:
            try:
                data = yaml.safe_load(Path(path).read_text()) or {}
            except (OSError, yaml.YAMLError) as e:
                raise SieError(f"SIE_CONFIG: cannot read config file {path}: {e}", field="config") from None
        for name, field in cls.model_fields.items():
            raw = env.get(f"SIE_{name.upper()}")
            if raw is None:
                continue
            if field.annotation == list[str]:
                sep = os.pathsep if name.endswith("_dirs") else ","
                data[name] = [p.strip() for p in raw.split(sep) if p.strip()]
            elif field.annotation is bool:
                data[name] = raw.strip().lower() in ("1", "true", "yes", "on")
            else:
                data[name] = raw
        try:
            return cls.model_validate(data)
        except ValidationError as e:
            err = e.errors()[0]
            key = ".".join(str(p) for p in err["loc"])
            raise SieError(f"setting {key} (SIE_{key.upper()}): {err['msg']} (got {err.get('input')!r})",
                           field=key) from None
