"""The model card: everything sie needs to know to serve one model, as data.

A new model is a new YAML file in this folder, not new code. Unknown keys are errors, so a typo in a
card fails at start-up with the file, the key and the reason instead of being silently ignored.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

Pooling = Literal["cls", "mean", "last"]
CudaDtype = Literal["float32", "float16", "bfloat16"]
CpuPrecision = Literal["fp32", "mixed", "int8"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class WeightSource(_Strict):
    """Where the weights live: exactly one of a Hugging Face id, a local folder or a Python package."""

    hf: str | None = Field(None, description="Hugging Face repo id, resolved from the local HF cache.")
    revision: str | None = Field(None, description="Commit, tag or branch of the HF repo.")
    path: str | None = Field(None, description="A local folder holding config.json and *.safetensors.")
    package: str | None = Field(None, description="An installed Python package that ships the weights.")
    subdir: str = Field("", description="Folder inside the package (or path) that holds the weights.")

    @model_validator(mode="after")
    def _exactly_one(self) -> WeightSource:
        given = [k for k in ("hf", "path", "package") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError(f"give exactly one of hf, path, package (got {given or 'none'})")
        if self.revision and not self.hf:
            raise ValueError("revision applies only to an hf source")
        return self

    def describe(self) -> str:
        if self.hf:
            return f"hf:{self.hf}" + (f"@{self.revision}" if self.revision else "")
        if self.path:
            return f"path:{self.path}"
        return f"package:{self.package}" + (f"/{self.subdir}" if self.subdir else "")


class DenseOutput(_Strict):
    dims: int = Field(gt=0, description="Width of the full embedding.")
    matryoshka: list[int] | None = Field(
        None, description="Widths the model was trained to be truncated to (Matryoshka); None = no truncation.")

    @model_validator(mode="after")
    def _matryoshka_within_dims(self) -> DenseOutput:
        for d in self.matryoshka or []:
            if not 0 < d <= self.dims:
                raise ValueError(f"matryoshka width {d} must be in 1..{self.dims}")
        return self


class EncodeCapability(_Strict):
    dense: DenseOutput | None = None


class Capabilities(_Strict):
    encode: EncodeCapability | None = None


class Prompts(_Strict):
    """Text prepended to inputs, per role (e5 uses 'query: ' / 'passage: ', bge a query instruction)."""

    query: str = ""
    document: str = ""


class DevicePrecision(_Strict):
    """Compute precision per device. CPU modes are described in `sie.models.precision`."""

    cpu: CpuPrecision = "mixed"
    cuda: CudaDtype = "float16"


class ModelCard(_Strict):
    name: str = Field(min_length=1, description="The name clients use, e.g. BAAI/bge-small-en-v1.5.")
    aliases: list[str] = Field(default_factory=list, description="Other names that resolve to this card.")
    description: str = ""
    source: WeightSource
    architecture: str = Field(description="Runner family: bert, roberta, xlm-roberta, or auto (transformers).")
    capabilities: Capabilities
    pooling: Pooling = "mean"
    normalize: bool = True
    prompts: Prompts = Prompts()
    max_tokens: int = Field(512, gt=0, le=131072, description="Inputs are truncated to this many tokens.")
    token_budget: int = Field(16384, gt=0, description="Most tokens in one forward pass.")
    precision: DevicePrecision = DevicePrecision()

    @model_validator(mode="after")
    def _budget_holds_one_input(self) -> ModelCard:
        if self.token_budget < self.max_tokens:
            raise ValueError(f"token_budget ({self.token_budget}) must be >= max_tokens ({self.max_tokens})")
        return self

    @property
    def dense_dims(self) -> int | None:
        enc = self.capabilities.encode
        return enc.dense.dims if enc and enc.dense else None
