"""`sie ...`: the command line. Other rooms add their sub-commands and `serve` options as plugins
(`sie.plugins`: entry points), so this module names none of them."""

from __future__ import annotations

import inspect
import json
import sys
from collections.abc import Callable, Sequence
from typing import Any

import typer
from rich.console import Console
from rich.table import Table

from sie.errors import SieError
from sie.plugins import Plugin, ServeOption, load_plugins

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
                     "capabilities": _capabilities(card),
                     "pooling": card.pooling, "max_tokens": card.max_tokens, "source": card.source.describe(),
                     "available": available})
    if json_out:
        for r in rows:
            print(json.dumps(r))
        return
    table = Table("model", "arch", "capabilities", "max tokens", "weights")
    for r in rows:
        table.add_row(r["name"], r["architecture"], r["capabilities"], str(r["max_tokens"]),
                      "[green]local[/green]" if r["available"] else "[dim]not local[/dim]")
    console.print(table)


def _capabilities(card) -> str:
    """'dense 384 + sparse', 'score cross-encoder', 'extract gliner'..."""
    caps, parts = card.capabilities, []
    if caps.encode:
        for kind in ("dense", "sparse", "multivector"):
            out = getattr(caps.encode, kind)
            if out is not None:
                dims = getattr(out, "dims", None)
                parts.append(f"{kind} {dims}" if dims else kind)
    if caps.score:
        parts.append(f"score {caps.score.kind}")
    if caps.extract:
        parts.append(f"extract {caps.extract.kind}")
    return " + ".join(parts)


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


def serve(host: str = typer.Option("127.0.0.1", help="Interface to bind (0.0.0.0 in containers)."),
          port: int = typer.Option(8080, help="TCP port."),
          preload: list[str] = typer.Option([], help="Models to load at start-up (repeatable)."),
          pin: list[str] = typer.Option([], help="Models never evicted (repeatable)."),
          device: str | None = typer.Option(None, help="auto | cpu | cuda | cuda:N (overrides SIE_DEVICE)."),
          log_level: str = typer.Option("info", help="uvicorn log level."),
          mounts: Sequence[tuple[ServeOption, str]] = ()) -> None:
    """Serve the HTTP API. SIGTERM drains: no new work, in-flight requests finish, then exit."""
    import uvicorn

    from sie.runtime import Engine
    from sie.server import create_app

    settings = _settings()
    settings = settings.model_copy(update={"preload": [*settings.preload, *preload], "pin": [*settings.pin, *pin],
                                           "strict_catalog": False, "device": device or settings.device})
    try:
        engine = Engine(settings)
    except SieError as e:
        _fail(e)
    app = create_app(engine)
    for option, value in mounts:
        try:
            option.mount(app, value)
        except SieError as e:
            _fail(e)
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=False,
                            timeout_graceful_shutdown=max(1, int(settings.drain_seconds)))

    class DrainingServer(uvicorn.Server):
        def handle_exit(self, sig, frame) -> None:
            app.state.draining = True
            engine.metrics.draining.set(1)
            super().handle_exit(sig, frame)

    try:
        DrainingServer(config).run()
    finally:
        engine.close()


def _settings():
    from sie.config import Settings

    try:
        return Settings.load()
    except SieError as e:
        _fail(e)


def serve_command(options: Sequence[ServeOption]) -> Callable[..., None]:
    """`serve` as a command with one more option per plugin's `ServeOption` (`--pipelines DIR`)."""
    own = inspect.signature(serve, eval_str=True)
    params = [p for name, p in own.parameters.items() if name != "mounts"]
    by_param = {o.name.replace("-", "_"): o for o in options}
    params += [inspect.Parameter(param, inspect.Parameter.KEYWORD_ONLY, annotation=str | None,
                                 default=typer.Option(None, f"--{o.name}", help=o.help))
               for param, o in by_param.items()]

    def command(**values: Any) -> None:
        given = {param: values.pop(param) for param in by_param}
        serve(**values, mounts=[(by_param[param], v) for param, v in given.items() if v is not None])

    command.__signature__ = own.replace(parameters=params)  # type: ignore[attr-defined]
    command.__annotations__ = {p.name: p.annotation for p in params}
    command.__doc__ = serve.__doc__
    return command


def register_plugins(target: typer.Typer, plugins: Sequence[Plugin]) -> None:
    """`serve` with the plugins' options, then the plugins' own sub-commands (`sie run`, `sie query`, ...)."""
    target.command("serve")(serve_command([o for p in plugins for o in p.serve_options]))
    for plugin in plugins:
        if plugin.commands is not None:
            plugin.commands(target)


register_plugins(app, load_plugins())

if __name__ == "__main__":
    app()
