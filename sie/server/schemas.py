"""Request bodies of the HTTP API (pydantic), also the source of the OpenAPI schema."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from sie.server.errors import UnprocessableInput


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Scheduling(_Body):
    """How the engine schedules this request (every native route's params)."""

    priority: Literal["interactive", "batch"] = Field(
        "interactive", description="interactive (default) is batched ahead of batch work; batch (bulk, "
                                   "ingest) keeps a minimum share of the device. (A time budget is the "
                                   "X-SIE-Timeout-Ms header.)")


class Item(_Body):
    id: str | None = Field(None, description="Echoed back with the item's result.")
    text: str = Field(min_length=1, description="The input text (not empty, not only whitespace).")


class EncodeParams(Scheduling):
    output_types: list[Literal["dense", "sparse", "multivector"]] | None = Field(
        None, min_length=1, description="Outputs from one forward pass; default: the model's first.")
    sparse_top_k: int | None = Field(None, gt=0, description="Keep the k largest sparse weights.")
    sparse_tokens: bool = Field(False, description="Add the vocabulary string of each sparse entry.")
    is_query: bool = False
    instruction: str | None = None
    dims: int | None = Field(None, gt=0)
    dtype: Literal["float32", "float16", "int8", "binary"] = "float32"
    normalize: bool | None = None


class EncodeRequest(_Body):
    items: list[Item] = Field(min_length=1)
    params: EncodeParams = EncodeParams()


class ScoreParams(Scheduling):
    top_k: int | None = Field(None, gt=0)
    instruction: str | None = None


class ScoreRequest(_Body):
    query: Item
    items: list[Item] = Field(min_length=1)
    params: ScoreParams = ScoreParams()


class ExtractParams(Scheduling):
    labels: list[str] | None = None
    threshold: float | None = Field(None, ge=0, le=1)
    flat: bool = True
    multi_label: bool = False


class ExtractRequest(_Body):
    items: list[Item] = Field(min_length=1)
    params: ExtractParams = ExtractParams()


class TokenizeItem(_Body):
    id: str | None = Field(None, description="Echoed back with the item's counts.")
    text: str = Field(description="The text to count; may be empty, and longer than the model reads "
                                  "(counts are never truncated).")


class TokenizeParams(Scheduling):
    add_special_tokens: bool = Field(True, description="Count the special tokens the model adds "
                                                       "([CLS], [SEP], <s>, ...), as encode does.")
    return_ids: bool = Field(False, description="Also return each text's token ids.")
    return_offsets: bool = Field(False, description="Also return each token's [start, end) character span "
                                                    "([0, 0] for special tokens).")


class TokenizeRequest(_Body):
    items: list[TokenizeItem] = Field(description="The texts; an empty list only checks that the model's "
                                                  "tokenizer loads.")
    params: TokenizeParams = TokenizeParams()


TOKEN_ARRAYS = ("input: token arrays are not supported; send the texts as strings (LangChain's OpenAIEmbeddings "
                "sends token arrays unless you set check_embedding_ctx_length=False)")


class EmbeddingsRequest(BaseModel):
    """OpenAI /v1/embeddings. Unknown OpenAI fields are accepted and ignored, as OpenAI clients send them."""

    model: str
    input: str | list[str] = Field(description="A string or a list of strings (token arrays are not supported).")
    dimensions: int | None = Field(None, gt=0)
    encoding_format: Literal["float", "base64"] = "float"
    user: str | None = None
    # Extensions (as TEI's prompt_name): the card's query or document prompt; default: document.
    input_type: str | None = Field(None, description="query (search_query) or document (passage, search_document).")
    prompt_name: str | None = Field(None, description="Same as input_type, under TEI's name.")
    priority: Literal["interactive", "batch"] = Field("interactive", description="sie's lane (an extra field).")

    @field_validator("input", mode="before")
    @classmethod
    def _no_token_arrays(cls, value: object) -> object:
        items = value if isinstance(value, list) else [value]
        if any(isinstance(v, int) or (isinstance(v, list) and any(isinstance(t, int) for t in v)) for v in items):
            raise UnprocessableInput(TOKEN_ARRAYS, field="input")
        return value


class RerankDocument(BaseModel):
    text: str


class RerankRequest(BaseModel):
    """Cohere / Jina style /v1/rerank."""

    model: str
    query: str
    documents: list[str | RerankDocument] = Field(min_length=1)
    top_n: int | None = Field(None, gt=0)
    return_documents: bool = False
    priority: Literal["interactive", "batch"] = Field("interactive", description="sie's lane (an extra field).")
