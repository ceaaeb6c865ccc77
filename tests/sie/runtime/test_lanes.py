"""The batcher's scheduling: awaitable admission that never blocks the event loop, interactive before
bulk with bulk's exact minimum share, and deadlines that drop queued work before compute.

The batcher runs the real tiny BERT forward pass; a `probe` kind of work wraps it to record which job each
computed sequence belonged to, and can hold the device (the `gate`) so the queue fills deterministically.
"""

from __future__ import annotations

import asyncio
import textwrap
import threading
import time

import pytest

from sie import Engine
from sie.config import Settings
from sie.errors import DeadlineExceeded, InvalidInput, QueueFull
from sie.metrics import Metrics
from sie.runtime.batcher import BULK_EVERY, TokenBudgetBatcher
from sie.runtime.compute import COMPUTE, EncodeMeta, forward_batch
from sie.server.errors import http_status

LONG = "many words in one sentence " * 20   # truncated to the card's 64 tokens: 4 sequences per 256-token batch


class Probe:
    """The `probe` kind: records the label of every sequence of every batch; waits at `gate` when closed."""

    def __init__(self) -> None:
        self.batches: list[list[str]] = []
        self.gate = threading.Event()
        self.gate.set()
        self.entered = threading.Event()

    def __call__(self, loaded, seqs, metas):
        self.entered.set()
        assert self.gate.wait(30), "the test never opened the gate"
        self.batches.append([m for m in metas])
        return forward_batch(loaded, seqs, [EncodeMeta()] * len(seqs))

    def lanes(self) -> list[str]:
        """One letter per batch: I (interactive) or B (batch), from the labels' first letter."""
        return ["".join(sorted({label[0] for label in b})) for b in self.batches]

    def seen(self) -> set[str]:
        return {label for b in self.batches for label in b}


@pytest.fixture()
def engine(tmp_path, tiny_models):
    (tmp_path / "t.yaml").write_text(textwrap.dedent(f"""
        name: t/normal
        source: {{path: "{tiny_models('bert')}"}}
        architecture: bert
        capabilities: {{encode: {{dense: {{dims: 64}}}}}}
        max_tokens: 64
        token_budget: 256
        precision: {{cpu: fp32}}
    """))
    e = Engine(Settings(device="cpu", catalog_dirs=[str(tmp_path)]))
    yield e
    e.close()


@pytest.fixture()
def probe() -> Probe:
    return Probe()


@pytest.fixture()
def batcher(probe):
    b = TokenBudgetBatcher(Metrics(), queue_capacity=8, compute={**COMPUTE, "probe": probe})
    yield b
    probe.gate.set()
    b.close()


def seqs_of(engine, n: int, text: str = LONG):
    return engine.model("t/normal").tokenizer.encode([text] * n)


def hold_device(batcher, engine, probe) -> None:
    """Close the gate and put one sequence on the device, so everything queued next waits."""
    probe.gate.clear()
    batcher.submit(engine.model("t/normal"), "probe", ("probe",), seqs_of(engine, 1, "hold"), ["H"])
    assert probe.entered.wait(10)


def test_waiting_for_room_never_blocks_the_event_loop(engine, batcher, probe):
    loaded = engine.model("t/normal")

    async def scenario():
        hold_device(batcher, engine, probe)
        batcher.submit(loaded, "probe", ("probe",), seqs_of(engine, 8), ["I-full"] * 8)  # the lane is full
        with pytest.raises(QueueFull, match="capacity 8"):
            await batcher.run(loaded, "probe", ("probe",), seqs_of(engine, 1), ["I-refused"])
        gaps: list[float] = []

        async def ticker():
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.005)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        ticking = asyncio.ensure_future(ticker())
        waiter = asyncio.ensure_future(batcher.run(loaded, "probe", ("probe",), seqs_of(engine, 1), ["I-waiter"],
                                                   wait=True))
        await asyncio.sleep(0.4)
        assert not waiter.done()  # still waiting for room, while the loop kept ticking
        probe.gate.set()  # the device frees, sequences leave the queue: the compute side wakes the waiter
        job = await asyncio.wait_for(waiter, 10)
        ticking.cancel()
        return job, gaps

    job, gaps = asyncio.run(scenario())
    assert job.results[0]["dense"].shape == (64,)
    assert len(gaps) > 40 and max(gaps) < 0.2, max(gaps)  # a blocked loop would show one ~0.4 s gap
    assert "I-waiter" in probe.seen() and "I-refused" not in probe.seen()


def test_interactive_work_is_batched_ahead_of_queued_bulk_work(engine, batcher, probe):
    loaded = engine.model("t/normal")

    async def scenario():
        hold_device(batcher, engine, probe)
        bulk = batcher.run(loaded, "probe", ("probe",), seqs_of(engine, 8), ["B"] * 8, lane="batch")
        interactive = batcher.run(loaded, "probe", ("probe",), seqs_of(engine, 8), ["I"] * 8)
        tasks = [asyncio.ensure_future(bulk)]
        await asyncio.sleep(0.05)  # bulk is queued first
        tasks.append(asyncio.ensure_future(interactive))
        await asyncio.sleep(0.05)
        probe.gate.set()
        await asyncio.gather(*tasks)

    asyncio.run(scenario())
    assert probe.lanes() == ["H", "I", "I", "B", "B"]  # 4 sequences of 64 tokens per 256-token batch


def test_bulk_keeps_exactly_one_batch_in_bulk_every_while_both_lanes_wait(engine, probe):
    batcher = TokenBudgetBatcher(Metrics(), queue_capacity=100, compute={**COMPUTE, "probe": probe})
    loaded = engine.model("t/normal")
    try:
        async def scenario():
            hold_device(batcher, engine, probe)
            bulk = asyncio.ensure_future(batcher.run(loaded, "probe", ("probe",), seqs_of(engine, 32), ["B"] * 32,
                                                     lane="batch"))
            await asyncio.sleep(0.05)
            interactive = asyncio.ensure_future(batcher.run(loaded, "probe", ("probe",), seqs_of(engine, 48),
                                                            ["I"] * 48))
            await asyncio.sleep(0.05)
            probe.gate.set()
            await asyncio.gather(bulk, interactive)

        asyncio.run(scenario())
    finally:
        probe.gate.set()
        batcher.close()
    assert BULK_EVERY == 4
    # 12 interactive and 8 bulk batches: while both wait, I I I B; then bulk alone
    assert probe.lanes() == ["H"] + ["I", "I", "I", "B"] * 4 + ["B"] * 4


def test_an_expired_job_leaves_the_queue_and_never_reaches_compute(engine, batcher, probe):
    loaded = engine.model("t/normal")

    async def scenario():
        hold_device(batcher, engine, probe)
        other = asyncio.ensure_future(batcher.run(loaded, "probe", ("probe",), seqs_of(engine, 2), ["I-other"] * 2))
        started = time.monotonic()
        with pytest.raises(DeadlineExceeded, match="ran out of time") as err:
            await batcher.run(loaded, "probe", ("probe",), seqs_of(engine, 4), ["I-late"] * 4,
                              deadline=time.monotonic() + 0.1)
        waited = time.monotonic() - started
        assert batcher.depth("t/normal") == 2  # its four sequences left the queue at once
        probe.gate.set()
        await other
        return err.value, waited

    error, waited = asyncio.run(scenario())
    assert 0.09 < waited < 1.0 and http_status(error) == 504 and error.field == "timeout_ms"
    assert "I-late" not in probe.seen() and "I-other" in probe.seen()


def test_the_compute_side_drops_expired_sequences_by_itself(engine, batcher, probe):
    """Without any caller to cancel it (its deadline passed while queued), the job fails before compute."""
    loaded = engine.model("t/normal")
    hold_device(batcher, engine, probe)
    late = batcher.submit(loaded, "probe", ("probe",), seqs_of(engine, 3), ["I-late"] * 3,
                          deadline=time.monotonic() + 0.05)
    kept = batcher.submit(loaded, "probe", ("probe",), seqs_of(engine, 1), ["I-kept"])
    time.sleep(0.1)
    probe.gate.set()
    assert kept.future.result(10) is None   # the future only says "done": the job holds the results
    assert kept.results[0] is not None
    assert isinstance(late.future.exception(10), DeadlineExceeded)
    assert "I-late" not in probe.seen()


def test_engine_calls_take_a_lane_and_a_timeout(engine):
    items = engine.encode_sync("t/normal", ["a bulk call"], priority="batch", timeout_ms=30_000)
    assert items[0].dense.shape == (64,)
    with pytest.raises(InvalidInput, match="priority: expected 'interactive' or 'batch', got 'urgent'"):
        engine.encode_sync("t/normal", ["x"], priority="urgent")
    with pytest.raises(InvalidInput, match="timeout_ms: expected a number of milliseconds"):
        engine.score_sync("t/normal", "q", ["x"], timeout_ms=0)


def test_an_engine_call_past_its_timeout_is_a_504_naming_the_call(engine):
    """The engine's own device held by a long bulk job: an interactive call with a tiny budget expires."""
    engine.encode_sync("t/normal", ["warm"])

    async def scenario():
        bulk = asyncio.ensure_future(engine.encode("t/normal", [LONG] * 400, priority="batch"))
        await asyncio.sleep(0.05)
        try:
            started = time.monotonic()
            with pytest.raises(DeadlineExceeded) as err:
                await engine.encode("t/normal", [LONG] * 64, timeout_ms=1)
            return err.value, time.monotonic() - started
        finally:
            bulk.cancel()

    error, waited = engine._sync.run(scenario())
    assert waited < 1.0 and http_status(error) == 504 and "t/normal" in error.message


def test_within_a_lane_work_with_a_deadline_goes_first_earliest_first(engine, probe):
    """A query pipeline's calls carry what is left of its budget: behind a flood of deadline-free calls in the
    same lane they would expire unserved, so the queue puts them first, earliest deadline first."""
    batcher = TokenBudgetBatcher(Metrics(), queue_capacity=100, compute={**COMPUTE, "probe": probe})
    loaded = engine.model("t/normal")
    try:
        hold_device(batcher, engine, probe)
        now = time.monotonic()
        jobs = [batcher.submit(loaded, "probe", ("probe",), seqs_of(engine, 8), ["F"] * 8),
                batcher.submit(loaded, "probe", ("probe",), seqs_of(engine, 4), ["L"] * 4, deadline=now + 30),
                batcher.submit(loaded, "probe", ("probe",), seqs_of(engine, 4), ["E"] * 4, deadline=now + 20),
                batcher.submit(loaded, "probe", ("probe",), seqs_of(engine, 4), ["G"] * 4)]
        probe.gate.set()
        for job in jobs:
            assert job.future.result(10) is None
    finally:
        probe.gate.set()
        batcher.close()
    # 4 sequences per batch: the earlier deadline, the later one, then the deadline-free work in arrival order
    assert probe.lanes() == ["H", "E", "L", "F", "F", "G"]


def test_a_full_lane_refuses_before_tokenizing_but_not_work_due_sooner(engine, batcher, probe):
    """`refuse_early` runs before a request is tokenized: a client ignoring Retry-After costs no tokenizing."""
    loaded = engine.model("t/normal")
    hold_device(batcher, engine, probe)
    batcher.refuse_early(loaded, "interactive", None)      # room: nothing raised
    batcher.submit(loaded, "probe", ("probe",), seqs_of(engine, 8), ["I-full"] * 8)  # capacity 8: full now
    with pytest.raises(QueueFull, match="capacity 8"):
        batcher.refuse_early(loaded, "interactive", None)
    batcher.refuse_early(loaded, "interactive", time.monotonic() + 30)  # due sooner: nothing is ahead of it
    batcher.refuse_early(loaded, "batch", None)            # the other lane is empty
    probe.gate.set()
