"""Sink generations and logical names, on every sink: a recreated collection has another generation; a
logical name switches atomically from one physical collection to another (alias or manifest) and readers
that follow it move over; a retired collection can be dropped, the one in use cannot."""

from __future__ import annotations

import pytest
from test_sink_contract import DENSE, records, unit

from connectors import ConnectorError, Schema, make_record
from connectors.base import physical_name

WIDE = {"vectors": {"dense": {"kind": "dense", "dim": 16, "distance": "cosine"}}}


def needs_two_clients(make_sink) -> None:
    if make_sink.backend in ("qdrant_memory", "qdrant_path"):
        pytest.skip("Qdrant's local engine takes one client per store (the pipeline reindex tests cover it)")


def test_generation_survives_reopen_and_changes_when_recreated(make_sink):
    needs_two_clients(make_sink)
    sink = make_sink(DENSE)
    assert sink.created
    first = sink.generation()
    sink.upsert(records(3))
    again = make_sink(collection=sink.config.collection)
    again.ensure(DENSE)
    assert not again.created and again.generation() == first
    again.close()
    sink.drop()
    sink.ensure(DENSE)
    assert sink.created and sink.generation() != first and sink.count() == 0


def test_a_logical_name_switches_to_a_new_physical_collection(make_sink):
    needs_two_clients(make_sink)
    old = make_sink(DENSE)
    old.upsert(records(5))
    logical = old.config.collection
    reader = make_sink(collection=logical)
    reader.ensure()
    assert reader.physical == old.physical and reader.count() == 5

    new = make_sink(collection=logical)
    new.pin(physical_name(logical, Schema.parse(WIDE)))
    new.ensure(WIDE)
    assert new.physical.startswith(logical + "__") and new.count() == 0
    assert not reader.follow() and reader.count() == 5              # not switched yet: the old one is read
    new.upsert([make_record(i, f"w{i}", {"dense": unit(i, 16)}, {}) for i in range(7)])
    new.point()
    assert reader.follow() and reader.physical == new.physical
    assert reader.schema.vectors["dense"].dim == 16 and reader.count() == 7
    assert new.pointed() == new.physical

    with pytest.raises(ConnectorError):
        new.drop_other(new.physical)                                 # the one in use stays
    new.drop_other(old.physical)
    assert new.count() == 7 and not reader.follow() and reader.count() == 7
