"""LruModelPool with real tiny models: budget that fits two of three, eviction order, host tier,
pins, in-flight protection, shared loads, bounded waits, idle eviction, remembered failures."""

from __future__ import annotations

import asyncio
import shutil
import textwrap
import time

import pytest

from sie import Engine
from sie.config import Settings
from sie.errors import ModelLoadFailed, ModelLoading, ResourceExhausted
from sie.runtime.loaded_model import estimate_footprint
from sie.server.errors import http_status

NAMES = ("m/a", "m/b", "m/c")


@pytest.fixture(scope="module")
def catalog_dir(tmp_path_factory, tiny_models):
    d = tmp_path_factory.mktemp("pool-cards")
    for seed, name in enumerate(NAMES):
        (d / f"{name[-1]}.yaml").write_text(textwrap.dedent(f"""
            name: {name}
            source: {{path: "{tiny_models('bert', seed=seed + 10)}"}}
            architecture: bert
            capabilities: {{encode: {{dense: {{dims: 64}}}}}}
            max_tokens: 64
            token_budget: 256
            precision: {{cpu: fp32}}
        """))
    return d


@pytest.fixture()
def make_engine(catalog_dir):
    engines = []

    def make(**settings) -> Engine:
        probe = Engine(Settings(device="cpu", catalog_dirs=[str(catalog_dir)]))
        footprint = estimate_footprint(probe.card("m/a"), probe.device)
        probe.close()
        base = {"device": "cpu", "catalog_dirs": [str(catalog_dir)], "memory_budget": str(int(2.5 * footprint)),
                "host_memory_budget": str(int(1.5 * footprint))}
        e = Engine(Settings(**{**base, **settings}))
        engines.append(e)
        return e

    yield make
    for e in engines:
        e.close()


def use(engine: Engine, *names: str) -> None:
    for n in names:
        engine.encode_sync(n, [f"text for {n}"])
        time.sleep(0.01)  # distinct last-used times


def tiers(engine: Engine) -> dict[str, str]:
    return {s["name"]: s["state"] for s in engine.pool.states() if s["name"] in NAMES}


def sample(engine: Engine, name: str, labels: dict) -> float:
    return engine.metrics.registry.get_sample_value(name, labels) or 0.0


def test_lru_evicts_to_host_and_swaps_back_without_reloading(make_engine):
    e = make_engine()
    use(e, "m/a", "m/b")
    assert tiers(e) == {"m/a": "device", "m/b": "device", "m/c": "unloaded"}
    use(e, "m/c")  # a is least recently used: it moves to the host tier
    assert tiers(e) == {"m/a": "host", "m/b": "device", "m/c": "device"}
    use(e, "m/b", "m/a")  # a comes back; c is now the LRU device model
    assert tiers(e) == {"m/a": "device", "m/b": "device", "m/c": "host"}
    assert sample(e, "sie_model_loads_total", {"model": "m/a", "result": "ok"}) == 1
    assert sample(e, "sie_model_swap_ins_total", {"model": "m/a"}) == 1
    swap = sample(e, "sie_model_swap_in_seconds_sum", {"model": "m/a"})
    load = sample(e, "sie_model_load_seconds_sum", {"model": "m/a"})
    assert swap < 0.1 * load, (swap, load)
    usage = e.pool.usage()
    assert usage["device"]["used"] <= usage["device"]["budget"] and usage["host"]["used"] <= usage["host"]["budget"]


def test_without_host_tier_evicted_models_are_dropped(make_engine):
    e = make_engine(host_memory_budget="0")
    use(e, "m/a", "m/b", "m/c")
    assert tiers(e) == {"m/a": "unloaded", "m/b": "device", "m/c": "device"}
    use(e, "m/a")
    assert sample(e, "sie_model_loads_total", {"model": "m/a", "result": "ok"}) == 2


def test_pinned_model_is_never_evicted(make_engine):
    e = make_engine(pin=["m/a"], host_memory_budget="0")
    e.preload()
    use(e, "m/b", "m/c", "m/b", "m/c")
    assert tiers(e)["m/a"] == "device"


def test_model_with_work_in_flight_is_never_evicted(make_engine):
    e = make_engine(host_memory_budget="0")
    lease = e.pool.acquire_sync("m/a")  # a request holds a, and a is the least recently used
    try:
        use(e, "m/b", "m/c")
        assert tiers(e) == {"m/a": "device", "m/b": "unloaded", "m/c": "device"}
    finally:
        lease.release()


def test_no_evictable_model_means_resource_exhausted(make_engine):
    e = make_engine(pin=["m/a", "m/b"])
    e.preload()
    with pytest.raises(ResourceExhausted) as info:
        use(e, "m/c")
    assert http_status(info.value) == 503 and info.value.retry_after
    assert "m/a" in info.value.message and "pinned" in info.value.message
    assert tiers(e)["m/c"] == "unloaded"  # not remembered as failed: it may fit later


def test_concurrent_requests_share_one_load(make_engine):
    e = make_engine()

    async def many():
        return await asyncio.gather(*(e.encode("m/b", [f"t{i}"]) for i in range(12)))

    results = e._sync.run(many())
    assert len(results) == 12
    assert sample(e, "sie_model_loads_total", {"model": "m/b", "result": "ok"}) == 1


def test_waiting_for_a_load_is_bounded(make_engine):
    e = make_engine(load_wait_timeout=0.001)
    with pytest.raises(ModelLoading) as info:
        use(e, "m/c")
    assert http_status(info.value) == 503 and info.value.retry_after >= 1
    deadline = time.monotonic() + 30
    while tiers(e)["m/c"] != "device" and time.monotonic() < deadline:  # the load went on without us
        time.sleep(0.02)
    use(e, "m/c")


def test_idle_models_are_evicted_after_the_timeout(make_engine):
    e = make_engine(idle_timeout=0.2, host_memory_budget="0")
    use(e, "m/a")
    deadline = time.monotonic() + 10
    while tiers(e)["m/a"] == "device" and time.monotonic() < deadline:
        time.sleep(0.05)
    assert tiers(e)["m/a"] == "unloaded"


def test_failed_load_is_remembered_until_reload(make_engine, tmp_path):
    e = make_engine()
    good = e.card("m/a")
    e.catalog.add(good.model_copy(update={"name": "m/late", "aliases": [], "source": good.source.model_copy(
        update={"path": str(tmp_path / "late")})}))
    for _ in range(2):
        with pytest.raises(ModelLoadFailed, match="no config.json"):
            use(e, "m/late")
    assert sample(e, "sie_model_loads_total", {"model": "m/late", "result": "failed"}) == 1  # remembered
    shutil.copytree(good.source.path, tmp_path / "late")  # the operator fixes the weights...
    with pytest.raises(ModelLoadFailed):
        use(e, "m/late")  # ...and requests still get the remembered failure...
    assert e.pool.load("m/late")["state"] == "device"  # ...until the operator reloads
    use(e, "m/late")
