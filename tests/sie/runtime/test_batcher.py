"""The batcher: cross-request batches, cancellation, and out-of-memory recovery.

Out-of-memory cannot be provoked deterministically on a CPU, so one runner here stands in for a
small device: it is the real BERT runner, refusing (torch.OutOfMemoryError) any forward pass over
more tokens than its `limit`.
"""

from __future__ import annotations

import asyncio
import textwrap

import numpy as np
import pytest
import torch

from sie import Engine
from sie.config import Settings
from sie.errors import ResourceExhausted
from sie.models import RUNNERS
from sie.models.bert import BertRunner


class SmallDeviceRunner(BertRunner):
    limit = 10**9

    def forward(self, batch):
        if batch.num_tokens > self.limit:
            raise torch.OutOfMemoryError(f"test device: {batch.num_tokens} tokens > {self.limit}")
        return super().forward(batch)


@pytest.fixture()
def engine(tmp_path, tiny_models, monkeypatch):
    monkeypatch.setitem(RUNNERS, "small-device-bert", (__name__, "SmallDeviceRunner"))
    folder = tiny_models("bert")
    for name, arch in (("t/small", "small-device-bert"), ("t/normal", "bert"), ("t/other", "bert")):
        (tmp_path / f"{name[2:]}.yaml").write_text(textwrap.dedent(f"""
            name: {name}
            source: {{path: "{folder}"}}
            architecture: {arch}
            capabilities: {{encode: {{dense: {{dims: 64}}}}}}
            max_tokens: 64
            token_budget: 256
            precision: {{cpu: fp32}}
        """))
    e = Engine(Settings(device="cpu", catalog_dirs=[str(tmp_path)]))
    yield e
    e.close()
    SmallDeviceRunner.limit = 10**9


def oom(engine, action: str) -> float:
    return engine.metrics.registry.get_sample_value("sie_oom_recoveries_total",
                                                    {"model": "t/small", "action": action}) or 0.0


TEXTS = [f"sentence number {i} with a few words" for i in range(8)]


def test_oom_evicts_an_idle_model_then_splits_and_answers_correctly(engine):
    want = np.stack([r.dense for r in engine.encode_sync("t/normal", TEXTS)])
    engine.encode_sync("t/other", ["an idle model to evict"])
    SmallDeviceRunner.limit = 40
    got = np.stack([r.dense for r in engine.encode_sync("t/small", TEXTS)])
    assert np.abs(got - want).max() < 1e-5
    assert oom(engine, "evict") >= 1 and oom(engine, "split") >= 1 and oom(engine, "fail") == 0
    states = {s["name"]: s["state"] for s in engine.pool.states()}
    assert states["t/other"] == "unloaded" or states["t/normal"] == "unloaded"


def test_oom_on_a_single_sequence_fails_that_request_only(engine):
    SmallDeviceRunner.limit = 3
    with pytest.raises(ResourceExhausted, match="out of device memory"):
        engine.encode_sync("t/small", ["this sentence is longer than three tokens"])
    assert oom(engine, "fail") == 1
    assert engine.encode_sync("t/normal", ["other models keep serving"])[0].dense.shape == (64,)


def test_requests_are_merged_into_shared_batches(engine):
    async def burst():
        return await asyncio.gather(*(engine.encode("t/normal", [t]) for t in TEXTS * 4))

    engine.encode_sync("t/normal", ["warm"])
    count_before = engine.metrics.registry.get_sample_value("sie_batch_items_count", {"model": "t/normal"})
    results = engine._sync.run(burst())
    batches = engine.metrics.registry.get_sample_value("sie_batch_items_count", {"model": "t/normal"}) - count_before
    assert len(results) == 32 and batches < 32  # some forward passes served several requests


def test_cancelled_job_is_not_computed(engine):
    engine.encode_sync("t/normal", ["warm"])
    loaded = engine.model("t/normal")
    seqs = loaded.tokenizer.encode(["a"] * 50)
    before = engine.metrics.registry.get_sample_value("sie_batch_items_sum", {"model": "t/normal"})
    with engine.batcher._cv:  # queue and cancel while the former cannot cut a batch in between
        job = engine.batcher.submit(loaded, "encode", ("encode", "dense"), seqs, [None] * 50)
        engine.batcher.cancel(job)
    engine.encode_sync("t/normal", ["flush"])
    after = engine.metrics.registry.get_sample_value("sie_batch_items_sum", {"model": "t/normal"})
    assert after - before == 1  # only "flush" was computed
    assert job.future.cancelled()


def test_a_batch_of_several_jobs_is_packed_longest_first_without_sorting_again():
    """Each job's sequences are queued longest first; a batch taking from several jobs is their runs merged,
    in exactly the order a stable longest-first sort of the batch gives (the order packing used before)."""
    import random

    from sie.runtime.batcher import _longest_first, _Piece

    rng = random.Random(7)
    for _ in range(200):
        pieces = []
        for job in range(rng.randint(1, 5)):
            lengths = sorted((rng.randint(1, 12) for _ in range(rng.randint(1, 6))), reverse=True)
            pieces += [_Piece(job, i, n) for i, n in enumerate(lengths)]
        merged = _longest_first(pieces)
        assert merged == sorted(pieces, key=lambda p: -p.tokens)
        assert [p.tokens for p in merged] == sorted((p.tokens for p in pieces), reverse=True)
