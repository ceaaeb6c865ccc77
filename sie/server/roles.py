"""The query/document role that compatibility APIs name in their own words (TEI's `prompt_name`, Cohere's
`input_type`, the OpenAI extension), mapped onto the card's two prompts: the Engine's `is_query`."""

from __future__ import annotations

from sie.server.errors import UnprocessableInput

# A card has a query prompt and a document prompt. Cohere's symmetric tasks (classification, clustering)
# embed texts as they are stored, so they take the document side, as does a request that names no role.
QUERY = ("query", "search_query")
DOCUMENT = ("document", "passage", "search_document", "classification", "clustering")


def is_query(name: str | None, field: str) -> bool:
    if name is None or name in DOCUMENT:
        return False
    if name in QUERY:
        return True
    raise UnprocessableInput(f"{field}: '{name}' is not a role this server knows; send one of "
                             f"{', '.join(QUERY + DOCUMENT)} (a model card has a query and a document prompt)",
                             field=field)
