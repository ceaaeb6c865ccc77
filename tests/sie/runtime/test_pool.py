"""LruModelPool with real tiny models: budget that fits two of three, eviction order, host tier,
pins, in-flight protection, shared loads, bounded waits, idle eviction, remembered failures, and fair
swapping (models that cannot both fit take turns under steady traffic instead of one starving)."""

from __future__ import annotations

import asyncio
import logging
import re
import shutil
import textwrap
import threading
import time
from collections.abc import Callable

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


@pytest.fixture(scope="module")
def footprint(catalog_dir) -> int:
    """Estimated device bytes of one of the (equal-sized) test models."""
    probe = Engine(Settings(device="cpu", catalog_dirs=[str(catalog_dir)]))
    try:
        return estimate_footprint(probe.card("m/a"), probe.device)
    finally:
        probe.close()


@pytest.fixture()
def make_engine(catalog_dir, footprint):
    engines = []

    def make(**settings) -> Engine:
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


# -- fair swapping: a busy model is drained and swapped out for one that needs its room -------------------
NO_ROOM = re.compile(r"memory: '(\S+)' needs \d+ MiB but the device budget is \d+ MiB and \d+ MiB is held by "
                     r"models that cannot be evicted now: (.+)$")


def one_fits(footprint: int) -> str:
    return str(int(1.5 * footprint))


def steady_traffic(engine: Engine, seconds: float, clients: dict[str, int],
                   route: Callable[[int, int], str] | None = None) -> dict[str, int]:
    """`clients[name]` closed-loop clients per model for `seconds`; each request must succeed. With `route`,
    client i's n-th request goes to route(i, n) instead (requests that alternate models)."""
    served = {name: 0 for name in NAMES}
    plan = [name for name, n in clients.items() for _ in range(n)]

    async def client(i: int, name: str, stop: float) -> None:
        n = 0
        while time.monotonic() < stop:
            model = route(i, n) if route else name
            out = await engine.encode(model, [f"client {i} request {n} for {model}", "a second text"])
            assert len(out) == 2 and out[0].dense is not None
            served[model] += 1
            n += 1

    async def run() -> None:
        stop = time.monotonic() + seconds
        # A deadlock shows as this timing out, not as a hung test.
        await asyncio.wait_for(asyncio.gather(*(client(i, name, stop) for i, name in enumerate(plan))), 120)

    engine._sync.run(run())
    assert {s["inflight"] for s in engine.pool.states()} == {0}  # every wait accounted for
    return served


def queued_behind_a_swap(engine: Engine, name: str) -> ModelLoading:
    """Wait until a bring-up waits for `name` to drain: a short request for it is then refused as still loading."""
    deadline = time.monotonic() + 30
    while True:
        assert time.monotonic() < deadline, f"requests for {name} never queued behind a pending swap"
        try:
            engine.pool.acquire_sync(name, timeout=0.2).release()
        except ModelLoading as refused:
            return refused
        time.sleep(0.02)


def test_two_models_that_cannot_both_fit_take_turns_under_steady_traffic(make_engine, footprint):
    e = make_engine(memory_budget=one_fits(footprint))
    served = steady_traffic(e, 4.0, {"m/a": 3, "m/b": 3})  # no request may fail with ResourceExhausted
    assert served["m/a"] >= 6 and served["m/b"] >= 6, served
    assert sample(e, "sie_model_swap_ins_total", {"model": "m/a"}) >= 1
    assert sample(e, "sie_model_swap_ins_total", {"model": "m/b"}) >= 1
    waited = sum(sample(e, "sie_model_swap_waits_total", {"model": n, "result": "ok"}) for n in ("m/a", "m/b"))
    assert waited >= 2, waited  # each turn began with a swap that waited for the other model to drain
    assert sum(sample(e, "sie_model_swap_waits_total", {"model": n, "result": r})
               for n in ("m/a", "m/b") for r in ("timeout", "abandoned")) == 0
    usage = e.pool.usage()
    assert usage["device"]["used"] <= usage["device"]["budget"]


def test_requests_that_alternate_models_never_deadlock(make_engine, footprint):
    e = make_engine(memory_budget=one_fits(footprint))
    served = steady_traffic(e, 4.0, {"m/a": 2, "m/b": 2, "m/c": 2},
                            route=lambda i, n: NAMES[(i + n) % len(NAMES)])
    assert all(count >= 3 for count in served.values()), served


def test_models_take_turns_in_the_room_pinned_models_leave(make_engine, footprint):
    e = make_engine(memory_budget=str(int(2.5 * footprint)), pin=["m/a"])
    e.preload()
    served = steady_traffic(e, 4.0, {"m/a": 2, "m/b": 2, "m/c": 2})
    assert all(count >= 3 for count in served.values()), served
    assert tiers(e)["m/a"] == "device"


def test_a_model_bigger_than_the_budget_fails_at_once_while_others_are_busy(make_engine, footprint, tiny_models):
    e = make_engine(memory_budget=one_fits(footprint))
    small = e.card("m/a")
    big = tiny_models("bert", seed=30, hidden_size=256, num_attention_heads=4, intermediate_size=512)
    e.catalog.add(small.model_copy(update={"name": "m/big", "aliases": [], "source": small.source.model_copy(
        update={"path": str(big)})}))
    with e.pool.acquire_sync("m/a"):  # busy: evicting it would still not make room
        started = time.monotonic()
        with pytest.raises(ResourceExhausted) as info:
            e.pool.acquire_sync("m/big", timeout=30)
        assert time.monotonic() - started < 5
    m = NO_ROOM.match(info.value.message)
    assert m and m.group(1) == "m/big" and "m/a" in m.group(2), info.value.message
    assert sample(e, "sie_model_swap_waits_total", {"model": "m/big", "result": "timeout"}) == 0


def test_a_model_blocked_by_pinned_models_fails_at_once(make_engine, footprint):
    e = make_engine(memory_budget=one_fits(footprint), pin=["m/a"], load_wait_timeout=30)
    e.preload()
    started = time.monotonic()
    with pytest.raises(ResourceExhausted) as info:
        use(e, "m/b")
    assert time.monotonic() - started < 5
    m = NO_ROOM.match(info.value.message)
    assert m and m.group(1) == "m/b" and "m/a" in m.group(2) and "pinned" in m.group(2), info.value.message


def test_a_swap_that_waits_past_its_bound_fails_with_the_same_message(make_engine, footprint):
    e = make_engine(memory_budget=one_fits(footprint), load_wait_timeout=2.0)
    held = e.pool.acquire_sync("m/a")  # never released while b waits: a never drains
    queued_for_a: list[float] = []

    def want_a() -> None:  # queues behind b's pending swap, and gets a as it is once b gives up
        queued_behind_a_swap(e, "m/a")
        e.pool.acquire_sync("m/a", timeout=30).release()
        queued_for_a.append(time.monotonic())

    other = threading.Thread(target=want_a)
    other.start()
    try:
        started = time.monotonic()
        with pytest.raises(ResourceExhausted) as info:
            e.pool.acquire_sync("m/b", timeout=30)  # the caller would wait longer than the swap may
        gave_up = time.monotonic()
        waited = gave_up - started
        other.join(10)
    finally:
        held.release()
    assert queued_for_a and -0.1 < queued_for_a[0] - gave_up < 2, (queued_for_a, gave_up)
    assert 2.0 <= waited < 12, waited
    assert http_status(info.value) == 503 and info.value.retry_after
    m = NO_ROOM.match(info.value.message)
    assert m and m.group(1) == "m/b" and m.group(2) == f"m/a ({footprint >> 20} MiB, 1 in flight)", \
        info.value.message
    assert sample(e, "sie_model_swap_waits_total", {"model": "m/b", "result": "timeout"}) == 1
    assert tiers(e)["m/b"] == "unloaded"  # not remembered as failed
    with e.pool.acquire_sync("m/a", timeout=5):  # the claim on a ended with the wait
        pass


def test_requests_for_a_model_being_drained_queue_behind_the_swap(make_engine, footprint):
    e = make_engine(memory_budget=one_fits(footprint))
    use(e, "m/a")
    held = e.pool.acquire_sync("m/a")
    got_b: list = []
    waiter = threading.Thread(target=lambda: got_b.append(e.pool.acquire_sync("m/b", timeout=60)))
    waiter.start()
    try:
        # Once b's bring-up waits for a, a new request for a no longer gets it: it waits behind the swap, and
        # its own bound still answers 503 ModelLoading with Retry-After.
        refused = queued_behind_a_swap(e, "m/a")
        assert http_status(refused) == 503 and refused.retry_after >= 1
        assert tiers(e)["m/a"] == "device" and not got_b
    finally:
        held.release()  # a drains: it is swapped out, b comes up
    waiter.join(30)
    assert got_b and tiers(e) == {"m/a": "host", "m/b": "device", "m/c": "unloaded"}
    lease_b = got_b[0]
    back = threading.Thread(target=lambda: e.pool.acquire_sync("m/a", timeout=60).release())
    back.start()  # a's turn: it waits for b to drain
    queued_behind_a_swap(e, "m/b")
    assert tiers(e)["m/b"] == "device"
    lease_b.release()
    back.join(30)
    assert not back.is_alive() and tiers(e)["m/a"] == "device" and tiers(e)["m/b"] == "host"
    assert sample(e, "sie_model_swap_waits_total", {"model": "m/a", "result": "ok"}) == 1
    assert sample(e, "sie_model_swap_waits_total", {"model": "m/b", "result": "ok"}) == 1
    assert {s["inflight"] for s in e.pool.states()} == {0}  # refused waits gave their places back


def test_a_swap_evicts_the_models_it_waited_for_and_keeps_an_idle_one_it_does_not_need(make_engine, footprint,
                                                                                        tiny_models):
    e = make_engine(memory_budget=one_fits(footprint))
    base = e.card("m/a")
    small = tiny_models("bert", seed=31, hidden_size=16, num_attention_heads=2, intermediate_size=32)
    e.catalog.add(base.model_copy(update={"name": "m/small", "aliases": [], "source": base.source.model_copy(
        update={"path": str(small)})}))
    assert estimate_footprint(e.card("m/small"), e.device) < footprint / 2  # a and small fit together
    use(e, "m/small", "m/a")  # small is the least recently used, and idle
    held = e.pool.acquire_sync("m/a")
    got_b: list = []
    waiter = threading.Thread(target=lambda: got_b.append(e.pool.acquire_sync("m/b", timeout=60)))
    waiter.start()
    queued_behind_a_swap(e, "m/a")  # b waits for a: evicting small alone would not make room
    held.release()
    waiter.join(30)
    assert got_b, "b never came up"
    got_b[0].release()
    assert e.pool.state("m/small")["state"] == "device" and tiers(e)["m/a"] == "host" and tiers(e)["m/b"] == "device"


def test_waiting_swaps_do_not_hold_up_a_model_that_fits(make_engine, footprint, tiny_models, caplog):
    caplog.set_level(logging.INFO, logger="sie.runtime.pool")
    e = make_engine(memory_budget=str(int(2.5 * footprint)))
    base = e.card("m/c")
    small = tiny_models("bert", seed=31, hidden_size=16, num_attention_heads=2, intermediate_size=32)
    for name, source in (("m/d", base.source), ("m/small", base.source.model_copy(update={"path": str(small)}))):
        e.catalog.add(base.model_copy(update={"name": name, "aliases": [], "source": source}))
    held = [e.pool.acquire_sync("m/a"), e.pool.acquire_sync("m/b")]  # the device is full of busy models
    got: list = []
    waiters = [threading.Thread(target=lambda n=n: got.append(e.pool.acquire_sync(n, timeout=60)))
               for n in ("m/c", "m/d")]
    for w in waiters:
        w.start()
    deadline = time.monotonic() + 30
    while {r.args[0] for r in caplog.records if r.getMessage().startswith(("m/c waits", "m/d waits"))} != \
            {"m/c", "m/d"}:  # both bring-ups wait on their threads for a or b to drain
        assert time.monotonic() < deadline, "c and d never waited"
        time.sleep(0.02)
    started = time.monotonic()
    with e.pool.acquire_sync("m/small", timeout=10):  # fits in the room left: it does not queue behind them
        assert time.monotonic() - started < 5
    assert not got
    for name in ("m/a", "m/b"):  # c and d each claimed one of them: both drain at once
        queued_behind_a_swap(e, name)
    for lease in held:
        lease.release()
    for w in waiters:
        w.join(30)
    assert len(got) == 2
    for lease in got:
        lease.release()
    assert tiers(e)["m/c"] == "device" and e.pool.state("m/d")["state"] == "device"


def test_close_ends_a_waiting_swap(make_engine, footprint):
    e = make_engine(memory_budget=one_fits(footprint))
    held = e.pool.acquire_sync("m/a")
    errors: list = []

    def want_b() -> None:
        try:
            e.pool.acquire_sync("m/b", timeout=60)
        except Exception as error:
            errors.append(error)

    waiter = threading.Thread(target=want_b)
    waiter.start()
    queued_behind_a_swap(e, "m/a")
    started = time.monotonic()
    e.close()  # does not sit out the 120 s load wait timeout
    assert time.monotonic() - started < 10
    waiter.join(10)
    held.release()
    assert len(errors) == 1 and isinstance(errors[0], ResourceExhausted), errors
    with pytest.raises(ModelLoading, match="shutting down"):  # a closed pool starts no loads, and says so
        e.pool.acquire_sync("m/c", timeout=5)
