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
import torch

from sie import Engine
from sie.config import Settings
from sie.errors import DeadlineExceeded, InvalidInput, QueueFull
from sie.metrics import Metrics
from sie.runtime.batcher import BULK_EVERY, SLICE_WINDOW, TokenBudgetBatcher
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
    # Full batches (no time slices): the held device would teach the batcher a meaningless throughput.
    b = TokenBudgetBatcher(Metrics(), queue_capacity=8, slice_seconds=None, compute={**COMPUTE, "probe": probe})
    yield b
    probe.gate.set()
    b.close()


def seqs_of(engine, n: int, text: str = LONG):
    return engine.model("t/normal").tokenizer.encode([text] * n)


def hold_device(batcher, engine, probe, **options) -> None:
    """Close the gate and put one sequence on the device, so everything queued next waits."""
    probe.gate.clear()
    batcher.submit(engine.model("t/normal"), "probe", ("probe",), seqs_of(engine, 1, "hold"), ["H"], **options)
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


def test_interactive_work_is_served_ahead_of_queued_bulk_work(engine):
    device = SteadyDevice()   # every 4-sequence batch takes the same ~73 ms
    batcher = TokenBudgetBatcher(Metrics(), queue_capacity=100, slice_seconds=None,
                                 compute={**COMPUTE, "probe": device})
    loaded = engine.model("t/normal")

    async def scenario():
        hold_device(batcher, engine, device)
        bulk = batcher.run(loaded, "probe", ("probe",), seqs_of(engine, 8), ["B"] * 8, lane="batch")
        interactive = batcher.run(loaded, "probe", ("probe",), seqs_of(engine, 8), ["I"] * 8)
        tasks = [asyncio.ensure_future(bulk)]
        await asyncio.sleep(0.05)  # bulk is queued first
        tasks.append(asyncio.ensure_future(interactive))
        await asyncio.sleep(0.05)
        device.gate.set()
        await asyncio.gather(*tasks)

    try:
        asyncio.run(scenario())
    finally:
        device.gate.set()
        batcher.close()
    # 4 sequences of 64 tokens per 256-token batch. The first interactive batch goes first; then bulk, whose
    # share of the time is behind, starts its first batch, and the second interactive batch preempts it.
    assert device.events == ["H<", "H>", "I<", "I>", "B<", "I<", "I>", "B>", "B<", "B>"]


def test_while_both_lanes_have_work_bulk_keeps_a_quarter_of_the_time(engine):
    device = SteadyDevice()   # every 4-sequence batch takes the same ~73 ms
    batcher = TokenBudgetBatcher(Metrics(), queue_capacity=100, slice_seconds=None,
                                 compute={**COMPUTE, "probe": device})
    loaded = engine.model("t/normal")
    try:
        async def scenario():
            hold_device(batcher, engine, device)
            bulk = asyncio.ensure_future(batcher.run(loaded, "probe", ("probe",), seqs_of(engine, 32), ["B"] * 32,
                                                     lane="batch"))
            await asyncio.sleep(0.05)
            interactive = asyncio.ensure_future(batcher.run(loaded, "probe", ("probe",), seqs_of(engine, 48),
                                                            ["I"] * 48))
            await asyncio.sleep(0.05)
            device.gate.set()
            await asyncio.gather(bulk, interactive)

        asyncio.run(scenario())
    finally:
        device.gate.set()
        batcher.close()
    assert BULK_EVERY == 4
    # 12 interactive batches and 8 bulk ones, all of one length. Until the interactive work is done, bulk
    # computes one batch for every three interactive ones (to within the one batch whose turn is being
    # decided), partly in batches that interactive ones preempted; then bulk alone.
    ends = [e for e in device.events if e.endswith(">") and e != "H>"]
    last_interactive = max(i for i, e in enumerate(ends) if e == "I>")
    bulk_meanwhile = ends[:last_interactive].count("B>")
    assert 3 <= bulk_meanwhile <= 5, " ".join(device.events)
    assert any(a == "B<" and b == "I<" for a, b in zip(device.events, device.events[1:])), "no preemption seen"
    assert ends.count("B>") == 8 and ends.count("I>") == 12


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


def test_counting_with_a_deadline_passes_a_flood_of_counting_in_its_lane(engine):
    """A query's final token counts carry its budget: they are counted on the deadline thread, not after
    every flooding request queued on the interactive tokenizer threads."""
    engine.count_tokens_sync("t/normal", ["warm"])
    done: list[str] = []

    async def count(label: str, n: int, **options) -> list[int]:
        counts = await engine.count_tokens("t/normal", [LONG * 4] * n, **options)
        done.append(label)
        return counts

    async def scenario():
        flood = [asyncio.ensure_future(count(f"flood{i}", 400)) for i in range(4)]
        await asyncio.sleep(0.05)
        counts = await count("deadline", 3, timeout_ms=60_000)
        await asyncio.gather(*flood)
        return counts

    counts = engine._sync.run(scenario())
    assert counts == engine.count_tokens_sync("t/normal", [LONG * 4] * 3) and counts[0] > 64  # untruncated
    assert done[0] == "deadline", done


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
    batcher = TokenBudgetBatcher(Metrics(), queue_capacity=100, slice_seconds=None,
                                 compute={**COMPUTE, "probe": probe})
    loaded = engine.model("t/normal")
    try:
        hold_device(batcher, engine, probe)
        now = time.monotonic()
        jobs = [batcher.submit(loaded, "probe", ("probe",), seqs_of(engine, 8), ["F"] * 8),
                batcher.submit(loaded, "probe", ("probe",), seqs_of(engine, 4), ["L"] * 4, deadline=now + 30),
                batcher.submit(loaded, "probe", ("probe",), seqs_of(engine, 4), ["E"] * 4, deadline=now + 20),
                batcher.submit(loaded, "probe", ("probe",), seqs_of(engine, 4), ["G"] * 4)]
        finish(probe, jobs)
    finally:
        probe.gate.set()
        batcher.close()
    # 4 sequences per batch: the earlier deadline, the later one, then the deadline-free work in arrival order
    assert probe.lanes() == ["H", "E", "L", "F", "F", "G"]


def test_a_batch_led_by_work_with_a_deadline_takes_no_other_work(engine, probe):
    """Filled up with the lane's deadline-free work, a one-query batch would compute a whole token budget and
    could not be preempted (issue 12's flood: such a query encode took 0.8 s of compute instead of 15 ms)."""
    batcher = TokenBudgetBatcher(Metrics(), queue_capacity=100, slice_seconds=None,
                                 compute={**COMPUTE, "probe": probe})
    loaded = engine.model("t/normal")
    try:  # held by work with a deadline, which nothing preempts: the next batch is cut with the device free
        hold_device(batcher, engine, probe, deadline=time.monotonic() + 30)
        jobs = [batcher.submit(loaded, "probe", ("probe",), seqs_of(engine, 8), ["F"] * 8),
                batcher.submit(loaded, "probe", ("probe",), seqs_of(engine, 1), ["D"], deadline=time.monotonic() + 30)]
        finish(probe, jobs)
    finally:
        probe.gate.set()
        batcher.close()
    assert probe.lanes() == ["H", "D", "F", "F"]


def finish(probe, jobs) -> None:
    """Open the held device and wait until every job is computed."""
    probe.gate.set()
    for job in jobs:
        assert job.future.result(10) is None


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


class Ordered(Probe):
    """Records when each batch starts and ends ('P<', 'P>'); `on_start` runs once, as the first batch starts."""

    def __init__(self) -> None:
        super().__init__()
        self.events: list[str] = []
        self.on_start = None

    def __call__(self, loaded, seqs, metas):
        self.events.append(f"{metas[0]}<")
        if self.on_start is not None:
            hook, self.on_start = self.on_start, None
            hook()
        out = super().__call__(loaded, seqs, metas)
        self.events.append(f"{metas[0]}>")
        return out


class SteadyDevice(Ordered):
    """A device of known throughput: each batch takes tokens / RATE seconds (plus the tiny forward pass)."""

    RATE = 3500.0   # tokens/s: a 50 ms slice is ~165 tokens, two 64-token sequences

    def __call__(self, loaded, seqs, metas):
        time.sleep(sum(len(s.ids) for s in seqs) / self.RATE)
        return super().__call__(loaded, seqs, metas)


def sizes(device: Probe) -> list[str]:
    """Each batch as its lane letter and sequence count, e.g. 'B4'."""
    return [f"{lane}{len(b)}" for lane, b in zip(device.lanes(), device.batches)]


def slicing_run(engine, slice_seconds: float, urgent: str) -> list[str]:
    """Eight sequences of less urgent work, one urgent job, eight more: the batches' sizes."""
    device = SteadyDevice()
    batcher = TokenBudgetBatcher(Metrics(), queue_capacity=100, slice_seconds=slice_seconds,
                                 compute={**COMPUTE, "probe": device})
    loaded = engine.model("t/normal")
    # interactive work slices bulk batches; work with a deadline slices deadline-free interactive ones
    lane = "batch" if urgent == "interactive" else "interactive"

    def run(n: int, label: str, **kw) -> None:
        batcher.submit(loaded, "probe", ("probe",), seqs_of(engine, n), [label] * n, **kw).future.result(30)

    try:
        run(8, lane[0].upper(), lane=lane)   # nothing more urgent seen yet: full batches; learns the rate
        run(1, "U", **({"deadline": time.monotonic() + 30} if urgent == "deadline" else {}))
        run(8, lane[0].upper(), lane=lane)
    finally:
        batcher.close()
    return sizes(device)


@pytest.mark.parametrize("urgent", ["interactive", "deadline"])
def test_while_urgent_work_is_about_less_urgent_batches_are_cut_to_a_time_slice(engine, urgent):
    x = "B" if urgent == "interactive" else "I"
    assert SLICE_WINDOW >= 5  # the second run starts well within the window of the urgent job's arrival
    # 50 ms at ~3500 tokens/s: two 64-token sequences per batch instead of the budget's four
    assert slicing_run(engine, 0.05, urgent) == [f"{x}4", f"{x}4", "U1"] + [f"{x}2"] * 4


def test_slices_off_and_urgent_work_itself_keep_full_batches(engine):
    assert slicing_run(engine, 0, "interactive") == ["B4", "B4", "U1", "B4", "B4"]
    # the urgent job's own lane, with nothing more urgent about, is never sliced
    device = SteadyDevice()
    batcher = TokenBudgetBatcher(Metrics(), queue_capacity=100, slice_seconds=0.05,
                                 compute={**COMPUTE, "probe": device})
    loaded = engine.model("t/normal")
    try:
        for label in ("B", "I", "I"):
            batcher.submit(loaded, "probe", ("probe",), seqs_of(engine, 8), [label] * 8,
                           lane="batch" if label == "B" else "interactive").future.result(30)
    finally:
        batcher.close()
    assert sizes(device) == ["B4", "B4"] + ["I4"] * 4


def vectors(job) -> list:
    return [r["dense"] for r in job.results]


@pytest.mark.parametrize("paused_lane, urgent, preempts", [
    ("batch", {}, True),                                  # interactive work preempts a bulk batch
    ("interactive", {"deadline": 30}, True),              # work with a deadline preempts work without
    ("interactive", {}, False),                           # equals never preempt each other
    ("batch", {"lane": "batch"}, False),
])
def test_more_urgent_work_runs_between_the_layers_of_the_batch_on_the_device(engine, paused_lane, urgent, preempts):
    def run(with_urgent: bool):
        device = Ordered()
        metrics = Metrics()
        batcher = TokenBudgetBatcher(metrics, queue_capacity=100, slice_seconds=None,
                                     compute={**COMPUTE, "probe": device})
        loaded = engine.model("t/normal")
        kw = {k: time.monotonic() + v if k == "deadline" else v for k, v in urgent.items()}
        jobs = {}
        if with_urgent:  # queued while the first batch is already on the device
            device.on_start = lambda: jobs.setdefault("U", batcher.submit(
                loaded, "probe", ("probe",), seqs_of(engine, 2, "urgent words here"), ["U"] * 2, **kw))
        jobs["P"] = batcher.submit(loaded, "probe", ("probe",), seqs_of(engine, 4), ["P"] * 4, lane=paused_lane)
        try:
            jobs["P"].future.result(30)
            if with_urgent:
                jobs["U"].future.result(30)
        finally:
            batcher.close()
        return device.events, jobs, metrics.registry.get_sample_value("sie_preemptions_total", {"model": "t/normal"})

    events, jobs, preemptions = run(with_urgent=True)
    assert events == (["P<", "U<", "U>", "P>"] if preempts else ["P<", "P>", "U<", "U>"])
    assert preemptions == (1 if preempts else None)
    # Preempted or not, every vector is the one the same batch computes alone.
    _, alone, _ = run(with_urgent=False)
    for got, want in zip(vectors(jobs["P"]), vectors(alone["P"])):
        assert torch.equal(torch.as_tensor(got), torch.as_tensor(want))


def test_a_batch_nobody_waits_for_stops_at_its_next_layer(engine):
    """Every job of the batch on the device expires: its forward pass stops between layers."""
    layers: list[str] = []

    class Counting(Probe):
        def __call__(self, loaded, seqs, metas):
            from sie.models import runner as contract
            hook = contract._thread.between_layers   # count the layer boundaries this batch reaches

            def counted():
                layers.append(metas[0])
                time.sleep(0.1)        # a slow layer: the job's 0.15 s deadline passes after the second
                hook()
            contract.install_between_layers(counted)
            try:
                return super().__call__(loaded, seqs, metas)
            finally:
                contract.install_between_layers(hook)

    device = Counting()
    batcher = TokenBudgetBatcher(Metrics(), queue_capacity=100, slice_seconds=None,
                                 compute={**COMPUTE, "probe": device})
    loaded = engine.model("t/normal")
    try:
        late = batcher.submit(loaded, "probe", ("probe",), seqs_of(engine, 4), ["L"] * 4,
                              deadline=time.monotonic() + 0.15)
        assert isinstance(late.future.exception(10), DeadlineExceeded)
        assert "while its batch was computing" in str(late.future.exception())
        kept = batcher.submit(loaded, "probe", ("probe",), seqs_of(engine, 1), ["K"])
        assert kept.future.result(10) is None and kept.results[0] is not None   # the device serves on
    finally:
        batcher.close()
    # It expired at its second boundary: finished, it would have resolved with results instead.
    assert layers[:2] == ["L", "L"]
