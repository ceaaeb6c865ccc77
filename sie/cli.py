"""`sie ...`: the command line. Other rooms register their sub-commands here lazily."""

from __future__ import annotations

import json
import sys

import typer
from rich.console import Console
from rich.table import Table

from sie.errors import SieError

app = typer.Typer(no_args_is_help=True, add_completion=False, help="sie: small models, one device.")
console = Console()


def _fail(e: SieError) -> None:
    Console(stderr=True).print(f"[red]error[/red] ({e.code}): {e.message}")
    raise typer.Exit(2)


@app.command()
def models(json_out: bool = typer.Option(False, "--json", help="One JSON object per model.")) -> None:
    """List the catalog: name, architecture, outputs, and whether the weights are on this machine."""
    from sie.catalog import Catalog
    from sie.runtime.weights import resolve_weights

    try:
        catalog = Catalog.from_dirs(*_settings().catalog_dirs)
    except SieError as e:
        _fail(e)
    rows = []
    for card in catalog:
        try:
            resolve_weights(card.source)
            available = True
        except SieError:
            available = False
        rows.append({"name": card.name, "architecture": card.architecture, "dims": card.dense_dims,
                     "pooling": card.pooling, "max_tokens": card.max_tokens, "source": card.source.describe(),
                     "available": available})
    if json_out:
        for r in rows:
            print(json.dumps(r))
        return
    table = Table("model", "arch", "dims", "pooling", "max tokens", "weights")
    for r in rows:
        table.add_row(r["name"], r["architecture"], str(r["dims"]), r["pooling"], str(r["max_tokens"]),
                      "[green]local[/green]" if r["available"] else f"[dim]missing ({r['source']})[/dim]")
    console.print(table)


@app.command()
def encode(model: str = typer.Argument(..., help="Model name or alias."),
           texts: list[str] = typer.Argument(None, help="Texts to encode; '-' or none reads lines from stdin."),
           query: bool = typer.Option(False, "--query", help="Encode as queries (query prompt)."),
           dims: int | None = typer.Option(None, help="Matryoshka width."),
           dtype: str = typer.Option("float32", help="float32 | float16 | int8 | binary"),
           ) -> None:
    """Encode texts and print one JSON line per text: tokens, truncated, and the vector."""
    from sie.runtime import Engine

    if not texts or texts == ["-"]:
        texts = [line.rstrip("\n") for line in sys.stdin if line.strip()]
    engine = Engine(_settings())
    try:
        results = engine.encode_sync(model, texts, is_query=query, dims=dims, dtype=dtype)
    except SieError as e:
        _fail(e)
    finally:
        engine.close()
    for text, r in zip(texts, results, strict=False):
        print(json.dumps({"text": text, "tokens": r.tokens, "truncated": r.truncated,
                          "dense": r.dense.tolist()}))


def _settings():
    from sie.config import Settings

    try:
        return Settings.load()
    except SieError as e:
        _fail(e)


if __name__ == "__main__":
    app()
