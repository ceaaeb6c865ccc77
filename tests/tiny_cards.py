"""Card YAML for tiny test models (a module of its own: test files import it by this unique name)."""

from __future__ import annotations

import textwrap


def card_yaml(name: str, folder, architecture: str, capabilities: str, *, extra: str = "", max_tokens: int = 64) -> str:
    """A card for a tiny model; `capabilities` is the YAML body under `capabilities:` (2-space indented)."""
    return textwrap.dedent(f"""\
        name: {name}
        source: {{path: "{folder}"}}
        architecture: {architecture}
        max_tokens: {max_tokens}
        precision: {{cpu: fp32}}
        capabilities:
        """) + textwrap.indent(textwrap.dedent(capabilities).strip() + "\n", "  ") + textwrap.dedent(extra)
