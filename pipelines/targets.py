"""How a run opens its sinks so that the run store and each sink never disagree, and how a change of the
sink schema (encode model, dims, outputs) becomes a blue/green reindex.

Drift. The run store's source rows say what a sink holds; they are true only for the collection they were
committed into. Each run checks, per sink, that it still has that collection: the collection was not just
created by this run's `ensure()`, it carries the sink generation (connectors.base) the store recorded, and
it holds at least the records the store committed. When it does not (the collection was dropped,
recreated, emptied, or the sink now points at another database), the sink's sources (this shard's) are
marked stale for that sink only and backfilled as for a new sink; ids are deterministic, so what is still
there is replaced, never duplicated. `full` reprocesses every source for every sink the same way.

Reindex. When the logical collection holds another schema than the pipeline now makes, the run writes
into a new physical collection `<collection>__<schema fingerprint>` (source rows under
`store.staging_key`, so a killed reindex resumes where it stopped), and only after every source was
committed switches the logical name (alias or manifest, see `Sink.point`), then moves the rows over in one
store transaction. Queries keep reading the old collection until the switch. Retired collections beyond
the sink's `keep_previous` are dropped once they have been retired for `drop_after_s`.

When is every source committed? Each run that covers its whole part of the sources (a files run of shard
i of N, or a posted-records run with `full`) records in the run store whether that part is complete
(`settle`): nothing failed or left in the dead-letter file for the sink, and no source the old collection
holds was refused this time (`blockers`: switching would drop its records from the live index; a refused
source the old collection never held blocks nothing). The run whose completion makes all N parts whole
switches, once: the store serializes completions and applies a promote only while the sink still stages
that collection, so two shards finishing at once cannot both switch, and completions under another N
never count.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from connectors import Schema, open_sink
from connectors.base import Sink, physical_name
from connectors.errors import ConnectorError
from pipelines.sources import FileSource, Shard
from pipelines.spec import SinkSpec
from pipelines.store import RunStore, SourceState, staging_key
from pipelines.writer import Target

Emit = Callable[..., None]
#: When a reindex fed by posted records switches: sie cannot re-read them to know the new collection has all.
RECORDS_SWITCH = "after a run request with full: true that posts every record (sie cannot re-read posted records)"


def current_schema(sink: Sink) -> Schema | None:
    """The schema of the collection the logical name resolves to now; None when there is none (or it was not
    made by sie, which `ensure(schema)` then adopts)."""
    try:
        return sink.ensure()
    except ConnectorError as e:
        if e.code in ("collection_missing", "schema_mismatch"):
            return None
        raise


def open_target(pipeline: str, spec: SinkSpec, schema: Schema, store: RunStore, shard: Shard, *, full: bool,
                emit: Emit) -> Target:
    sink = open_sink(spec.raw)
    try:
        current = current_schema(sink)
        if current is not None and current != schema:
            target = _staged(pipeline, spec, sink, schema, store, emit)
        else:
            sink.ensure(schema)
            _finish_interrupted_switch(pipeline, spec, sink, store, emit)
            target = Target(spec, sink, store.sources(pipeline, spec.key))
        drift(pipeline, target, store, shard, emit)
        if full:
            target.states = {s: _stale(st) for s, st in target.states.items()}
        return target
    except BaseException:
        sink.close()
        raise


def _staged(pipeline: str, spec: SinkSpec, sink: Sink, schema: Schema, store: RunStore, emit: Emit) -> Target:
    """A target pinned to the new physical collection of a reindex (created, or resumed)."""
    old = sink.physical
    new = physical_name(sink.config.collection, schema)
    state = store.sink_state(pipeline, spec.key)
    if state.staging != new and store.begin_reindex(pipeline, spec.key, new) and state.staging is not None:
        # the schema changed again before an earlier reindex finished: retire that one
        store.set_retired(pipeline, spec.key, [*state.retired, (state.staging, time.time())])
    sink.pin(new)
    sink.ensure(schema)
    key = staging_key(spec.key, new)
    states = store.sources(pipeline, key)
    emit("reindex", sink=spec.key, old=old, new=new, resumed=sum(s.hash is not None for s in states.values()),
         message=f"{spec.label}: model changed: reindex into {new}, then switch {_how(sink)}")
    return Target(spec, sink, states, state_key=key, reindex=(old, new))


def _finish_interrupted_switch(pipeline: str, spec: SinkSpec, sink: Sink, store: RunStore, emit: Emit) -> None:
    """A run killed between switching the logical name and moving the rows: the name already points at the
    staged collection, so only the store's half of the switch is left."""
    state = store.sink_state(pipeline, spec.key)
    if state.staging is not None and sink.physical == state.staging:
        _promote(pipeline, spec, sink, store, state.physical or spec.raw.get("collection", ""), emit)


def drift(pipeline: str, target: Target, store: RunStore, shard: Shard, emit: Emit) -> None:
    """Mark this shard's sources stale for the target when its collection is not the one the store knows."""
    sink, key = target.sink, target.state_key
    generation = sink.generation()
    known = store.sink_state(pipeline, key)
    sources, records = store.committed_records(pipeline, key)
    why = None
    if sources:
        if sink.created:
            why = "was recreated"
        elif known.generation is not None and known.generation != generation:
            why = "was recreated (another generation marker than the run store committed into)"
        elif (count := sink.count()) < records:
            why = f"holds {count} records, fewer than the {records} committed"
    stale = [s for s, st in target.states.items() if st.hash is not None and shard.owns(s)] if why else []
    if why or (known.generation, known.physical) != (generation, sink.physical):
        store.record_generation(pipeline, key, generation, sink.physical, stale)
    if why:
        for s in stale:
            target.states[s] = _stale(target.states[s])
        emit("sink_recreated", sink=target.key, reason=why, sources=len(stale),
             message=f"{target.spec.label}: sink {why}: backfilling {len(stale)} sources")


def blockers(pipeline: str, target: Target, store: RunStore, source: FileSource, shard: Shard) -> dict[str, str]:
    """{source id: why it was refused} for this shard's sources that block the switch: the old collection
    holds them (committed under the sink's live key), the new one does not, and they were refused this time,
    so switching would drop their records from the live index."""
    held = store.sources(pipeline, target.key)
    out = {}
    for s, state in sorted(held.items()):
        new = target.states.get(s)
        if state.hash is not None and shard.owns(s) and (new is None or new.hash is None):
            why = source.refusal_of(s)
            if why is not None:
                out[s] = why
    return out


def settle(pipeline: str, target: Target, store: RunStore, shard: Shard, run_id: str, why_not: str | None,
           emit: Emit) -> None:
    """Record whether this run's part (shard i of N) of the reindex is complete (`why_not` None) or not (its
    reason, said in the run's notes; an earlier completion of this shard no longer holds). The completion
    that makes every part whole switches the logical name."""
    assert target.reindex is not None
    old, new = target.reindex
    label, part = target.spec.label, f"shard {shard.index}/{shard.count}"
    if why_not is not None:
        store.withdraw_shard(pipeline, target.key, new, shard.index, shard.count)
        emit("reindex_waiting", sink=target.key, new=new, reason=why_not,
             message=f"{label}: reindex into {new} is not complete: {why_not}; queries keep reading {old} "
                     "until a run completes it")
        return
    missing = store.complete_shard(pipeline, target.key, new, shard.index, shard.count, run_id)
    if not missing:
        switch(pipeline, target, store, emit)
        return
    if len(missing) == shard.count:  # the sink no longer stages `new`: another run switched it meanwhile
        emit("reindex_superseded", sink=target.key, new=new,
             message=f"{label}: another run switched or replaced the reindex into {new} meanwhile; the next run "
                     "redoes what this one committed after that")
        return
    others = ", ".join(f"{len(done)} of {n}" for n, done in store.shard_completions(pipeline, target.key, new).items()
                       if n != shard.count)
    elsewhere = (f"; completions recorded under another shard count ({others}) do not count towards "
                 f"{shard.count}") if others else ""
    emit("reindex_waiting", sink=target.key, new=new, shard=part, missing=missing,
         message=f"{label}: reindex into {new}: {part} is complete; waiting for shard(s) "
                 f"{', '.join(f'{i}/{shard.count}' for i in missing)} (queries keep reading {old} until every "
                 f"shard has completed){elsewhere}")


def switch(pipeline: str, target: Target, store: RunStore, emit: Emit) -> None:
    """After every source was committed into the staged collection: point the logical name at it."""
    assert target.reindex is not None
    target.sink.point()
    _promote(pipeline, target.spec, target.sink, store, target.reindex[0], emit)
    target.state_key, target.reindex = target.key, None


def _promote(pipeline: str, spec: SinkSpec, sink: Sink, store: RunStore, old: str, emit: Emit) -> None:
    state = store.sink_state(pipeline, spec.key)
    retired = [r for r in state.retired if r[0] not in (old, sink.physical)]
    if old and old != sink.physical:
        retired.append((old, time.time()))
    if store.promote(pipeline, spec.key, old, sink.physical, sink.generation(), retired):
        emit("switched", sink=spec.key, old=old, new=sink.physical,
             message=f"{spec.label}: switched {sink.config.collection} from {old} to {sink.physical}")


def drop_retired(pipeline: str, target: Target, store: RunStore, emit: Emit) -> None:
    """Drop the retired collections beyond `keep_previous` once their grace period is over."""
    config: Any = target.sink.config
    retired = store.sink_state(pipeline, target.key).retired
    keep = retired[len(retired) - config.keep_previous:] if config.keep_previous else []
    now = time.time()
    expired = [r for r in retired if r not in keep and now - r[1] >= config.drop_after_s]
    if not expired:
        return
    for physical, _ in expired:
        if physical != target.sink.physical:
            target.sink.drop_other(physical)
            store.forget_sink(pipeline, staging_key(target.key, physical))
            emit("dropped", sink=target.key, collection=physical,
                 message=f"{target.spec.label}: dropped the retired collection {physical}")
    store.set_retired(pipeline, target.key, [r for r in retired if r not in expired])


def _stale(state: SourceState) -> SourceState:
    return SourceState(None, None, state.high_water, state.updated_at)


def _how(sink: Sink) -> str:
    return "alias" if sink.aliases else "the manifest pointer"
