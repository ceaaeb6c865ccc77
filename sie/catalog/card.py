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
    include: list[str] = Field(default_factory=list, description=(
        "Extra files a download must fetch besides configs, safetensors and tokenizer files "
        "(bge-m3: colbert_linear.pt, sparse_linear.pt; GLiNER: pytorch_model.bin)."))

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


class SparseOutput(_Strict):
    """Vocabulary-space weights. 'splade': the masked-LM head, log(1 + ReLU(logits)), max over tokens.
    'token-weights' (bge-m3): ReLU(Linear(hidden → 1)) per token, max per token id.
    'term-frequency': no model at all — 1 + ln(count) per distinct token of the model's tokenizer; with a
    sink that applies IDF (Qdrant's `idf` modifier) this is BM25-style lexical search for hybrid queries."""

    kind: Literal["splade", "token-weights", "term-frequency"] = "splade"
    weights: str | None = Field(None, description="token-weights: file holding the Linear(hidden, 1).")
    skip_special_tokens: bool = Field(False, description="Drop the weights of special tokens ([CLS], [SEP], pad, unk).")
    top_k: int | None = Field(None, gt=0, description="Keep at most this many entries unless a request says otherwise.")
    query_weights: Literal["model", "idf"] = Field("model", description=(
        "'idf': queries skip the model and weight each distinct token by idf.json (inference-free "
        "sparse encoders such as opensearch-neural-sparse-encoding-doc-*)."))

    @model_validator(mode="after")
    def _weights_for_token_weights(self) -> SparseOutput:
        if self.kind == "token-weights" and not self.weights:
            raise ValueError("kind 'token-weights' needs 'weights' (the file holding Linear(hidden, 1))")
        return self


class MultivectorOutput(_Strict):
    """One vector per token (ColBERT): token states → linear projection → L2 normalization."""

    dims: int = Field(gt=0)
    projection: str = Field("linear.weight", description=(
        "The [dims, hidden] projection: a tensor name in the checkpoint, or 'file:tensor' for a separate "
        "file (bge-m3: 'colbert_linear.pt:weight'). A bias next to it is used when present."))
    query_marker: str | None = Field(None, description="Token inserted after [CLS] in queries (ColBERT: [unused0]).")
    document_marker: str | None = Field(None, description="Token inserted after [CLS] in documents ([unused1]).")
    query_tokens: int | None = Field(None, gt=0, description="Query length limit, markers included.")
    document_tokens: int | None = Field(None, gt=0, description="Document length limit, markers included.")
    mask_augmentation: bool = Field(False, description="Pad queries with [MASK] up to query_tokens.")
    attend_to_mask_tokens: bool = Field(False, description="Whether other tokens attend to the [MASK] padding.")
    skip_punctuation: bool = Field(False, description="Drop document vectors of punctuation tokens.")
    skip_first_token: bool = Field(False, description="Drop the [CLS] vector (bge-m3).")
    normalize: bool = True

    @model_validator(mode="after")
    def _augmentation_needs_a_length(self) -> MultivectorOutput:
        if self.mask_augmentation and not self.query_tokens:
            raise ValueError("mask_augmentation needs query_tokens (the length queries are padded to)")
        return self


class EncodeCapability(_Strict):
    dense: DenseOutput | None = None
    sparse: SparseOutput | None = None
    multivector: MultivectorOutput | None = None

    @model_validator(mode="after")
    def _at_least_one(self) -> EncodeCapability:
        if not (self.dense or self.sparse or self.multivector):
            raise ValueError("encode needs at least one of dense, sparse, multivector")
        return self


class PairTemplate(_Strict):
    """How a decoder reranker sees (instruction, query, document): prefix + body + suffix, where the body
    holds {instruction}, {query} and {document} and is the part truncated to fit max_tokens."""

    prefix: str = ""
    body: str = Field(description="Text with {instruction}, {query} and {document} placeholders.")
    suffix: str = ""
    default_instruction: str = ""

    @model_validator(mode="after")
    def _placeholders(self) -> PairTemplate:
        for key in ("{query}", "{document}"):
            if key not in self.body:
                raise ValueError(f"body must contain {key}")
        return self


class ScoreCapability(_Strict):
    """'cross-encoder': a sequence-classification head over (query, document) pairs. 'yes-no': a decoder's
    next-token logits for yes/no after `template` (Qwen3-Reranker). 'late-interaction': MaxSim over the
    multivector output. 'bi-encoder': cosine of the dense vectors."""

    kind: Literal["cross-encoder", "yes-no", "late-interaction", "bi-encoder"]
    activation: Literal["sigmoid", "none", "softmax"] = Field("sigmoid", description=(
        "cross-encoder: applied to the logit ('softmax' over several logits, then label_index)."))
    label_index: int = Field(0, ge=0, description="Which logit is relevance when the head has several.")
    yes_token: str = "yes"
    no_token: str = "no"
    template: PairTemplate | None = None

    @model_validator(mode="after")
    def _template_for_yes_no(self) -> ScoreCapability:
        if self.kind == "yes-no" and self.template is None:
            raise ValueError("kind 'yes-no' needs a template")
        return self


class ExtractCapability(_Strict):
    """'gliner': zero-shot spans for labels given at request time. 'token-classification': BIO/IOB2 tags
    aggregated into spans. 'nli': zero-shot classification through an entailment cross-encoder.
    'similarity': zero-shot classification with the model's own dense embeddings (cosine between the
    text and each label's hypothesis) — cheaper and weaker than NLI, and needs no other model."""

    kind: Literal["gliner", "token-classification", "nli", "similarity"]
    threshold: float = Field(0.5, ge=0, le=1, description="Default minimum score of a returned entity/label.")
    labels: list[str] = Field(default_factory=list, description="Labels used when a request names none.")
    hypothesis_template: str = Field("This example is {}.", description="nli, similarity: the hypothesis per label.")
    temperature: float = Field(0.05, gt=0, description=(
        "similarity: single-label scores are softmax(cosine / temperature) across the labels."))
    aggregation: Literal["simple", "first", "average", "max"] = Field(
        "simple", description="token-classification: how sub-word predictions become entities (as transformers).")

    @model_validator(mode="after")
    def _template_has_slot(self) -> ExtractCapability:
        if self.kind in ("nli", "similarity") and "{}" not in self.hypothesis_template:
            raise ValueError("hypothesis_template must contain {} (where the label goes)")
        return self


class Capabilities(_Strict):
    encode: EncodeCapability | None = None
    score: ScoreCapability | None = None
    extract: ExtractCapability | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Capabilities:
        if not (self.encode or self.score or self.extract):
            raise ValueError("a card needs at least one of encode, score, extract")
        if self.score and self.score.kind == "late-interaction" and not (self.encode and self.encode.multivector):
            raise ValueError("score kind 'late-interaction' needs encode.multivector")
        if self.score and self.score.kind == "bi-encoder" and not (self.encode and self.encode.dense):
            raise ValueError("score kind 'bi-encoder' needs encode.dense")
        return self


class Prompts(_Strict):
    """Text prepended to inputs, per role (e5 uses 'query: ' / 'passage: ', bge a query instruction)."""

    query: str = ""
    document: str = ""
    instruction: str | None = Field(None, description=(
        "Query prefix when a request brings its own instruction, with an {instruction} slot "
        "(Qwen3-Embedding: 'Instruct: {instruction}\\nQuery:'); without it the instruction replaces the prefix."))

    def query_prefix(self, instruction: str | None) -> str:
        if instruction is None:
            return self.query
        return self.instruction.replace("{instruction}", instruction) if self.instruction else instruction


class DevicePrecision(_Strict):
    """Compute precision per device. CPU modes are described in `sie.models.precision`."""

    cpu: CpuPrecision = "mixed"
    cuda: CudaDtype = "float16"


class ModelCard(_Strict):
    name: str = Field(min_length=1, description="The name clients use, e.g. BAAI/bge-small-en-v1.5.")
    aliases: list[str] = Field(default_factory=list, description="Other names that resolve to this card.")
    description: str = ""
    source: WeightSource
    architecture: str = Field(description="Runner family (see sie.models.RUNNERS): bert, roberta, xlm-roberta, "
                                          "modernbert, qwen2, qwen3, gliner, or auto (transformers).")
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
