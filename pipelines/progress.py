"""What `sie run` shows: rich progress bars per stage and sink (items/s, ETA where a total is known), a
summary table at the end; or, with `--progress jsonl`, one JSON line per runner event for machines."""

from __future__ import annotations

import json
import sys
import time
from typing import Any

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text


class RateColumn(ProgressColumn):
    """Items per second (rich's speed column counts bytes)."""

    def render(self, task: Any) -> Text:
        speed = task.finished_speed or task.speed
        return Text(f"{speed:,.1f}/s" if speed else "-/s", style="progress.data.speed")


class RichProgress:
    def __init__(self, console: Console, sinks: dict[str, str]) -> None:
        self.progress = Progress(TextColumn("{task.description:<28}"), BarColumn(), MofNCompleteColumn(),
                                 RateColumn(), TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                 console=console, transient=False, refresh_per_second=8)
        self.sinks = sinks
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> RichProgress:
        self.progress.start()
        self.tasks["sources"] = self.progress.add_task("sources read/skipped", total=None)
        self.tasks["chunks"] = self.progress.add_task("chunks through steps", total=None)
        for key, label in self.sinks.items():
            self.tasks[key] = self.progress.add_task(f"→ {label}", total=None)
        return self

    def __exit__(self, *exc: Any) -> None:
        self.progress.stop()

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        p, t = self.progress, self.tasks
        if event == "listed":
            p.update(t["sources"], total=data["files"])
        elif event in ("read", "skipped"):
            p.advance(t["sources"])
        elif event == "chunked":
            total = p.tasks[t["chunks"]].total or 0
            p.update(t["chunks"], total=total + data["chunks"])
            for key in self.sinks:
                p.update(t[key], total=(p.tasks[t[key]].total or 0) + data["chunks"])
        elif event == "processed":
            p.advance(t["chunks"], data["chunks"])
        elif event == "committed":
            p.advance(t[data["sink"]], data["records"])
        elif event == "retry":
            where = self.sinks.get(data.get("sink", ""), data.get("stage", "steps"))
            p.console.print(f"[yellow]retry[/yellow] {where} attempt {data['attempt']}: {data['error']} "
                            f"(next in {data['delay_s']} s)")
        elif event == "refused":
            p.console.print(f"[yellow]refused[/yellow] {data['path']}: {data['reason']}", highlight=False)
        elif "message" in data:   # backfill of a recreated sink, reindex, switch
            p.console.print(f"[cyan]note[/cyan] {data['message']}")
        elif event == "dead_letter":
            p.console.print(f"[red]dead letter[/red] {self.sinks.get(data['sink'], data['sink'])} "
                            f"{data['source']}: {data['error']}")


class JsonLines:
    """Every runner event as one JSON line on stdout, flushed, so a supervisor can follow (or kill) a run."""

    def __call__(self, event: str, data: dict[str, Any]) -> None:
        sys.stdout.write(json.dumps({"event": event, "t": round(time.time(), 3), **data}) + "\n")
        sys.stdout.flush()


def summary_table(report: Any, sinks: dict[str, str]) -> Table:
    stages = report.counters["stages"]
    table = Table(title=f"run {report.run_id[:12]} · {report.state} · {report.seconds:.1f} s")
    for column in ("sink", "read", "refused", "chunked", "written", "skipped", "failed", "deleted"):
        table.add_column(column, justify="left" if column == "sink" else "right")
    for key, counts in report.counters["sinks"].items():
        table.add_row(sinks.get(key, key), str(stages["read"]), str(stages.get("refused", 0)),
                      str(stages["chunked"]), str(counts["written"]), str(counts["skipped"]), str(counts["failed"]),
                      str(counts["deleted"]))
    return table


def refusal_lines(counters: dict[str, Any]) -> list[str]:
    """What the source rules refused, one line each, printed under the summary table."""
    refusals = counters.get("refusals") or []
    lines = [f"refused {r['path']}: {r['reason']}" for r in refusals]
    more = counters["stages"].get("refused", 0) - len(refusals)
    return lines + ([f"refused: {more} more (the first {len(refusals)} are listed)"] if more > 0 else [])
