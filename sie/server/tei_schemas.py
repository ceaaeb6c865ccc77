"""Request bodies of the TEI routes, with TEI's field names and defaults (router/src/http/types.rs).

Unknown fields are ignored, as TEI's (serde) bodies do; token-id inputs, which TEI also takes, are refused
with a message that says so (sie's routes take text).
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, field_validator

from sie.server.errors import UnprocessableInput

# TEI accepts both spellings (serde aliases "left"/"Left").
Direction = Literal["right", "Right", "left", "Left"]


def _no_token_ids(value: object) -> object:
    items = value if isinstance(value, list) else [value]
    if any(isinstance(v, int) or (isinstance(v, list) and v and isinstance(v[0], int)) for v in items):
        raise UnprocessableInput("inputs: token ids are not supported here; send text (strings)", field="inputs")
    return value


class _Encode(BaseModel):
    inputs: str | list[str] = Field(description="A text or a list of texts.")
    truncate: bool | None = Field(None, description="Cut inputs longer than the model's limit (default: true, "
                                                    "TEI's auto-truncate); false refuses them with a 422.")
    truncation_direction: Direction = "right"
    prompt_name: str | None = Field(None, description="The card's prompt: query (search_query) or document "
                                                      "(passage, search_document); default: document.")

    _tokens = field_validator("inputs", mode="before")(_no_token_ids)


class EmbedRequest(_Encode):
    normalize: bool = True
    dimensions: int | None = Field(None, gt=0, description="Matryoshka width (models trained for it).")


class EmbedSparseRequest(_Encode):
    pass


class EmbedAllRequest(_Encode):
    pass


class RerankRequest(BaseModel):
    query: str
    texts: list[str]
    truncate: bool | None = None
    truncation_direction: Direction = "right"
    raw_scores: bool = Field(False, description="Not supported: scores are the card's relevance (e.g. sigmoid).")
    return_text: bool = False


class PredictRequest(BaseModel):
    inputs: str | list[str] | list[list[str]] = Field(
        description="A text, or a batch [[text], ...]; TEI's text pairs ([a, b]) are not supported.")
    truncate: bool | None = None
    truncation_direction: Direction = "right"
    raw_scores: bool = False


class SimilarityInput(BaseModel):
    source_sentence: str
    sentences: list[str]


class SimilarityParameters(BaseModel):
    truncate: bool | None = None
    truncation_direction: Direction = "right"
    prompt_name: str | None = None


class SimilarityRequest(BaseModel):
    inputs: SimilarityInput
    parameters: SimilarityParameters | None = None


class TokenizeRequest(BaseModel):
    inputs: str | list[str]
    add_special_tokens: bool = True
    prompt_name: str | None = None


class DecodeRequest(BaseModel):
    ids: list[int] | list[list[int]] = Field(description="Token ids, or a batch of them.")
    skip_special_tokens: bool = True
