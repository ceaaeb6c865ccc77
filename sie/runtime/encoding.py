"""An encode request: validated options → the card's output kinds → one forward pass for every output the
model computes → each output's per-request finishing.

Which outputs a request may ask for is the card's; what each output needs (its options, whether the
model computes it, how inputs are tokenized, how rows are finished) is its kind's (sie.runtime.kinds).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sie.catalog.card import ModelCard
from sie.errors import InvalidInput
from sie.runtime.compute import EncodeMeta
from sie.runtime.inputs import validate_texts
from sie.runtime.kinds import OUTPUTS, output_kind
from sie.runtime.kinds.base import OutputKind, Plan, Runtime, timing
from sie.runtime.loaded_model import LoadedModel
from sie.runtime.results import EncodedItem
from sie.runtime.tokenizer import Tokenized

OUTPUT_TYPES = OUTPUTS


@dataclass(frozen=True)
class EncodeAsk:
    """One encode request's options (see Engine.encode)."""

    is_query: bool = False
    dims: int | None = None
    dtype: str = "float32"
    normalize: bool | None = None
    instruction: str | None = None
    output_types: Sequence[str] | None = None
    sparse_top_k: int | None = None
    sparse_tokens: bool = False


def output_types(card: ModelCard, asked: Sequence[str] | None) -> tuple[str, ...]:
    """The outputs to compute, in canonical order. None: the card's dense output, else its first one."""
    enc = card.capabilities.encode
    offered = [t for t in OUTPUT_TYPES if enc is not None and getattr(enc, t) is not None]
    if not offered:
        raise InvalidInput(f"model: '{card.name}' has no encode capability (it scores or extracts)", field="model")
    if asked is None:
        return (offered[0],)
    if isinstance(asked, str) or not isinstance(asked, Sequence) or not asked:
        raise InvalidInput(f"output_types: expected a non-empty list of {', '.join(OUTPUT_TYPES)}, got {asked!r}",
                           field="output_types")
    for t in asked:
        if t not in OUTPUT_TYPES:
            raise InvalidInput(f"output_types: unknown output '{t}'; valid: {', '.join(OUTPUT_TYPES)}",
                               field="output_types")
        if t not in offered:
            raise InvalidInput(f"output_types: '{card.name}' has no {t} output; it offers {', '.join(offered)}",
                               field="output_types")
    return tuple(t for t in OUTPUT_TYPES if t in asked)


def validate_top_k(top_k: object, field: str = "sparse_top_k") -> None:
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k <= 0):
        raise InvalidInput(f"{field}: expected a positive integer, got {top_k!r}", field=field)


def declared_outputs(card: ModelCard) -> list[OutputKind]:
    enc = card.capabilities.encode
    return [output_kind(card, t) for t in OUTPUT_TYPES if getattr(enc, t) is not None]


def validate(card: ModelCard, asked: dict[str, OutputKind], ask: EncodeAsk) -> None:
    """Every asked output checks its options; dims/dtype without an output they shape are refused."""
    for kind in asked.values():
        kind.validate(card, ask)
    if not any(kind.vector_options for kind in asked.values()) and (ask.dims is not None or ask.dtype != "float32"):
        raise InvalidInput(f"dims/dtype: apply to dense vectors, and this request asks for {', '.join(asked)} "
                           f"(add 'dense' to output_types)", field="dims" if ask.dims is not None else "dtype")
    validate_top_k(ask.sparse_top_k)


async def encode(rt: Runtime, card: ModelCard, items: list[str], ask: EncodeAsk) -> list[EncodedItem]:
    texts = validate_texts(items)
    asked = {output: output_kind(card, output) for output in output_types(card, ask.output_types)}
    validate(card, asked, ask)
    prefix = (card.prompts.query_prefix(ask.instruction) if ask.is_query
              else ask.instruction if ask.instruction is not None else card.prompts.document)
    texts = [prefix + t for t in texts] if prefix else texts
    forward = tuple(output for output, kind in asked.items() if kind.computed(card, ask.is_query))
    # Only some outputs treat the roles differently (multivector: punctuation); elsewhere queries and
    # documents share batches.
    role = ("query" if ask.is_query else "document") if any(asked[o].role_sensitive for o in forward) else "any"
    shaping = next((kind for kind in declared_outputs(card) if kind.shapes_sequences), None)

    def sequences(loaded: LoadedModel) -> list[Tokenized]:
        if shaping is None:
            return loaded.tokenizer.encode(texts)
        return shaping.sequences(card, loaded.tokenizer, texts, is_query=ask.is_query)

    async with await rt.acquire(card) as loaded:
        seqs, tokenize_s = await rt.prepare(loaded, lambda: sequences(loaded))
        job = None
        if forward:
            job = await rt.run(loaded, Plan("encode", ("encode", forward, role), seqs,
                                            [EncodeMeta(forward, role)] * len(seqs)))
        rows = {output: [r[output] for r in job.results] if output in forward else kind.without_model(loaded, seqs)
                for output, kind in asked.items()}
        tokenizer = loaded.tokenizer
    values = {output: kind.finish(card, tokenizer, rows[output], ask) for output, kind in asked.items()}
    return [EncodedItem(**(dict.fromkeys(OUTPUT_TYPES) | {output: v[i] for output, v in values.items()}),
                        tokens=len(s.ids), truncated=s.truncated, timing=timing(job, i, tokenize_s))
            for i, s in enumerate(seqs)]
