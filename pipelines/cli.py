"""`sie run | query | validate | plan | schema | mcp`: the pipelines' commands, registered into the `sie`
app by `register(app)` (which the pipelines plugin, pipelines/plugin.py, calls). Heavy modules are imported
inside each command.

Exit codes: 0 done; 1 done with failures (see the dead-letter file); 2 a mistake in the pipeline or the
command (printed as `file:line:col key.path: ...`, never a traceback); 130 interrupted.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import typer

STORE_HELP = "Run store: a SQLite file or postgresql:// URL (default $SIE_RUN_STORE, else .sie/runs.sqlite " \
             "next to the pipeline file)."


def _fail(message: str, code: str | None = None) -> None:
    from rich.console import Console

    err = Console(stderr=True, highlight=False, soft_wrap=True)
    if code == "invalid_pipeline":
        for line in message.splitlines():
            err.print(f"[red]error[/red] {line}", markup=True)
    else:
        err.print(f"[red]error[/red] ({code}): {message}" if code else f"[red]error[/red] {message}")
    raise typer.Exit(2)


def _guard(call: Any) -> Any:
    """Run `call`, turning every error a user can cause into a one-line message and exit code 2."""
    from connectors.errors import ConnectorError
    from sie.errors import SieError

    try:
        return call()
    except (SieError, ConnectorError) as e:
        _fail(e.message, e.code)


def _store_url(store: str | None, pipeline_file: Path) -> str:
    return store or os.environ.get("SIE_RUN_STORE") or str(pipeline_file.resolve().parent / ".sie" / "runs.sqlite")


def _load(file: Path, strict_env: bool = True) -> Any:
    from pipelines.spec import load_pipeline

    return _guard(lambda: load_pipeline(file, strict_env=strict_env, shown_as=str(file)))


def run(file: Path = typer.Argument(..., help="The ingest pipeline (YAML)."),
        shard: str = typer.Option("0/1", help="INDEX/COUNT: process only this shard's sources "
                                              "(e.g. $JOB_COMPLETION_INDEX/8 in an indexed Job)."),
        sync_deletions: bool | None = typer.Option(None, "--sync-deletions/--no-sync-deletions",
                                                   help="Delete the records of sources that disappeared "
                                                        "(default: the source's sync_deletions)."),
        retry_dlq: bool = typer.Option(False, "--retry-dlq", help="Replay the dead-letter file only."),
        full: bool = typer.Option(False, "--full", help="Reprocess every source for every sink and delete the "
                                                        "records of sources that no longer exist."),
        store: str | None = typer.Option(None, help=STORE_HELP),
        progress: str = typer.Option("auto", help="auto | rich | jsonl | none"),
        json_out: bool = typer.Option(False, "--json", help="Print the final report as one JSON line.")) -> None:
    """Run an ingest pipeline: read → steps → sinks, incrementally, with retries and a dead-letter file."""
    import threading

    from rich.console import Console

    from pipelines.engines import open_engine
    from pipelines.progress import JsonLines, RichProgress, refusal_lines, summary_table
    from pipelines.runner import IngestRunner, RunOptions
    from pipelines.sources import Shard
    from pipelines.store import open_store

    p = _load(file)
    if p.kind != "ingest":
        _fail(f"{file}: a query pipeline; use `sie query {file} \"question\"`", "invalid_input")
    options = _guard(lambda: RunOptions(shard=Shard.parse(shard), sync_deletions=sync_deletions,
                                        retry_dlq=retry_dlq, full=full))
    run_store = _guard(lambda: open_store(_store_url(store, file)))
    console = Console(stderr=True)
    if not console.is_terminal:  # into a pipe or a file the summary is printed whole, not cut to 80 columns
        console.width = max(console.width, 160)
    mode = progress if progress != "auto" else ("rich" if console.is_terminal else "none")
    engine, close = _guard(lambda: open_engine(p.engine))
    stop = threading.Event()
    labels = {s.key: s.label for s in p.sinks}
    try:
        runner = IngestRunner(p, engine, run_store, stop=stop)
        if mode == "rich":
            with RichProgress(console, labels) as bars:
                runner.listener = bars
                report = _guard(lambda: runner.run(options))
        else:
            runner.listener = JsonLines() if mode == "jsonl" else None
            report = _guard(lambda: runner.run(options))
    except KeyboardInterrupt:
        stop.set()
        console.print("[yellow]interrupted[/yellow]: rerun to finish; nothing is lost or duplicated")
        raise typer.Exit(130) from None
    finally:
        close()
        run_store.close()
    if json_out:
        print(json.dumps({"run_id": report.run_id, "state": report.state, "counters": report.counters,
                          "errors": report.errors, "dead_letters": report.dead_letters,
                          "seconds": report.seconds}))
    else:
        console.print(summary_table(report, labels))
        for line in refusal_lines(report.counters):
            console.print(line, highlight=False, markup=False)
        for line in report.counters.get("notes", []):
            console.print(f"[cyan]note[/cyan] {line}")
        for line in report.errors:
            console.print(f"[red]error[/red] {line}")
        if report.dead_letters:
            console.print(f"{report.dead_letters} item(s) in {runner.dlq_path(options.shard)}; "
                          f"replay with `sie run {file} --retry-dlq`")
    raise typer.Exit({"succeeded": 0, "partial": 1, "interrupted": 130}.get(report.state, 2))


def query(file: Path = typer.Argument(..., help="The query pipeline (YAML)."),
          text: str = typer.Argument(..., help="The question."),
          max_tokens: int | None = typer.Option(None, help="Token budget (overrides the trim step's)."),
          limit: int | None = typer.Option(None, help="Candidates retrieved (overrides the search step's)."),
          where: str | None = typer.Option(None, help='Extra metadata filter as JSON, e.g. \'{"lang": "en"}\'.'),
          json_out: bool = typer.Option(False, "--json", help="Print the answer as JSON.")) -> None:
    """Run a query pipeline and print the chunks, their scores and the tokens before/after."""
    import asyncio

    from rich.console import Console
    from rich.table import Table

    from pipelines.engines import open_engine
    from pipelines.query import QueryRunner

    p = _load(file)
    if p.kind != "query":
        _fail(f"{file}: an ingest pipeline; use `sie run {file}`", "invalid_input")
    try:
        filters = json.loads(where) if where else None
    except json.JSONDecodeError as e:
        _fail(f"--where: not JSON: {e.msg}", "invalid_input")
    engine, close = _guard(lambda: open_engine(p.engine))
    runner = _guard(lambda: QueryRunner(p, engine))
    try:
        answer = _guard(lambda: asyncio.run(runner.query(text, max_tokens=max_tokens, limit=limit, where=filters)))
    finally:
        runner.close()
        close()
    if json_out:
        print(json.dumps(answer, ensure_ascii=False))
        return
    console = Console()
    table = Table("#", "score", "tokens", "source", "text")
    for i, r in enumerate(answer["results"]):
        preview = " ".join(r["text"].split())
        table.add_row(str(i + 1), f"{r['score']:.4f}", str(r["tokens"]), str(r["metadata"].get("source", "")),
                      preview[:100] + ("…" if len(preview) > 100 else ""))
    console.print(table)
    tokens, rerank = answer["tokens"], answer["rerank"]
    console.print(f"tokens: {tokens['before']} retrieved → {tokens['after']} returned (budget {tokens['budget']})"
                  + (f" · rerank {rerank['status']}" if rerank else ""))


def validate(files: list[Path] = typer.Argument(..., help="Pipeline files.")) -> None:
    """Check pipeline files: the spec, and (in-process engine) that the models exist. Writes nothing."""
    from pipelines.errors import SpecError
    from pipelines.models import local_directory
    from pipelines.plan import check_models
    from pipelines.spec import load_pipeline

    bad = 0
    directory = None
    for file in files:
        try:
            p = load_pipeline(file, strict_env=False, shown_as=str(file))
            if p.engine.url is None:
                directory = directory or _guard(local_directory)
                problems = check_models(p, directory, capabilities=False)
                if problems:
                    raise SpecError(problems)
        except SpecError as e:
            bad += 1
            for line in e.message.splitlines():
                typer.echo(f"error {line}", err=True)
            continue
        typer.echo(f"ok {file}: {p.kind} pipeline '{p.name}' ({len(p.steps)} steps"
                   + (f", {len(p.sinks)} sink(s))" if p.kind == "ingest" else ")"))
    if bad:
        raise typer.Exit(2)


def plan(file: Path = typer.Argument(..., help="The pipeline (YAML)."),
         store: str | None = typer.Option(None, help=STORE_HELP),
         shard: str = typer.Option("0/1", help="INDEX/COUNT, as for `sie run`."),
         json_out: bool = typer.Option(False, "--json", help="Print the plan as JSON.")) -> None:
    """Check models, capabilities, tokenizers and sink schemas, and show what a run would do. Writes nothing."""
    from pipelines.engines import open_models
    from pipelines.models import ModelDirectory
    from pipelines.plan import (
        check_models,
        check_sinks,
        check_tokenizers,
        describe_steps,
        raise_if,
        reindex_outlook,
        source_outlook,
    )
    from pipelines.sources import Shard
    from pipelines.store import open_store
    from pipelines.tokenizers import Tokenizers

    p = _load(file)
    models, close = _guard(lambda: open_models(p.engine))
    try:
        directory = _guard(lambda: ModelDirectory.from_engine(models))
        problems = check_models(p, directory, capabilities=True) + check_tokenizers(p, Tokenizers(models))
    finally:
        close()
    sink_problems, sinks = check_sinks(p, directory)
    _guard(lambda: raise_if(problems + sink_problems))
    outlook = None
    if p.kind == "ingest":
        url = _store_url(store, file)
        exists = url.startswith("postgres") or Path(url).exists()
        run_store = _guard(lambda: open_store(url)) if exists else None
        outlook = _guard(lambda: source_outlook(p, run_store, Shard.parse(shard)))
        if run_store is not None:
            run_store.close()
    collections = reindex_outlook(p, directory)
    for s in sinks:
        if s["sink"] in collections:
            s["collection"] = collections[s["sink"]]
    result = {"pipeline": p.name, "kind": p.kind, "version": p.version, "fingerprint": p.fingerprint(),
              "engine": p.engine.url or "in-process", "steps": describe_steps(p), "sinks": sinks, "source": outlook}
    if json_out:
        print(json.dumps(result, ensure_ascii=False))
        return
    out = [f"pipeline {p.name} ({p.kind}, version {p.version}) · engine {result['engine']}"]
    out += [f"  {line}" for line in result["steps"]]
    for s in sinks:
        vectors = ", ".join(f"{n}: {v.get('kind')} {v.get('dim') or ''}".rstrip() for n, v in s["schema"].items()) \
            if s.get("schema") else "?"
        out.append(f"  sink {s['sink']} [{vectors}]: {s['status']}"
                   + (f" · {s['collection']}" if s.get("collection") else ""))
    if outlook and outlook.get("type") == "files":
        out.append(f"  source {outlook['root']} {outlook.get('patterns')}: {outlook.get('files', 0)} files, "
                   f"{outlook.get('sources', 0)} sources, {outlook.get('refused', 0)} refused")
        out += [f"    refused {r['path']}: {r['reason']}" for r in outlook.get("refusals") or []]
        for label, n in (outlook.get("per_sink") or {}).items():
            out.append(f"    {label}: would process {n['process']}, skip {n['skip']}, vanished {n['vanished']}")
    elif outlook and outlook.get("type") in ("s3", "gcs", "azure"):
        out.append(f"  source {outlook['root']} {outlook.get('patterns')}: {outlook.get('files', 0)} objects"
                   + (f" · {outlook['error']}" if outlook.get("error") else ""))
        for label, n in (outlook.get("per_sink") or {}).items():
            out.append(f"    {label}: would download {n['download']}, skip {n['skip']} unchanged")
    typer.echo("\n".join(out))


def schema(kind: str = typer.Option("all", help="all | ingest | query")) -> None:
    """Print the JSON Schema of pipeline files (for editors and docs)."""
    from pipelines.json_schema import pipeline_schema

    if kind not in ("all", "ingest", "query"):
        _fail(f"--kind: expected all, ingest or query, got {kind!r}", "invalid_input")
    print(json.dumps(pipeline_schema(kind), indent=2))


def mcp(pipelines: Path = typer.Option(..., "--pipelines", help="Folder of pipeline files.")) -> None:
    """Serve the folder's query pipelines as Model Context Protocol tools over stdio."""
    from pipelines.mcp_server import serve_stdio

    _guard(lambda: serve_stdio(pipelines))


def register(app: typer.Typer) -> None:
    for command in (run, query, validate, plan, schema, mcp):
        app.command(command.__name__)(command)


def main() -> None:  # pragma: no cover - `python -m pipelines.cli`
    app = typer.Typer(no_args_is_help=True, add_completion=False)
    register(app)
    app(args=sys.argv[1:])
