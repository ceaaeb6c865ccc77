"""Many models on one device: on-demand loading, a memory budget, LRU eviction into a host-RAM tier.

Tiers: `device` (ready to compute) → `host` (weights kept in RAM, pinned on CUDA; swapping back
is a copy, not a load) → dropped. A model with work in flight, or pinned, is never evicted.
Concurrent requests for an unloaded model share one load and wait for it (bounded; then 503 with
Retry-After). A load that fails for good (missing or broken weights) is remembered and answered
502 until an operator reloads it; every other model keeps serving.

One lock guards all slots; loads and swaps run on a small loader pool so compute never waits on
disk. Eviction copies happen under the lock: rare, bounded by one model's size, and they keep the
accounting trivially consistent.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import gc
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import torch

from sie.catalog import Catalog, ModelCard
from sie.errors import ModelBusy, ModelLoadFailed, ModelLoading, ResourceExhausted, SieError, without_frames
from sie.metrics import Metrics
from sie.runtime.loaded_model import LoadedModel

log = logging.getLogger(__name__)


class Tier(StrEnum):
    UNLOADED = "unloaded"
    LOADING = "loading"
    DEVICE = "device"
    HOST = "host"
    FAILED = "failed"


@dataclass
class _Slot:
    card: ModelCard
    tier: Tier = Tier.UNLOADED
    loaded: LoadedModel | None = None
    error: SieError | None = None
    ready: concurrent.futures.Future | None = None   # resolves to the LoadedModel once on the device
    inflight: int = 0
    last_used: float = 0.0
    device_bytes: int = 0     # accounted on the device (an estimate while loading)
    host_bytes: int = 0
    pinned: bool = False
    loads: int = 0


@dataclass
class Lease:
    """A model held for one request: it cannot be evicted until released."""

    pool: LruModelPool
    slot: _Slot
    model: LoadedModel
    _released: bool = field(default=False, repr=False)

    def release(self) -> None:
        if not self._released:
            self._released = True
            self.pool._end(self.slot)

    async def __aenter__(self) -> LoadedModel:
        return self.model

    async def __aexit__(self, *exc) -> None:
        self.release()

    def __enter__(self) -> LoadedModel:
        return self.model

    def __exit__(self, *exc) -> None:
        self.release()


Loader = Callable[[ModelCard], LoadedModel]
Estimator = Callable[[ModelCard], int]


def _still_loading(slot: _Slot, waited: float) -> ModelLoading:
    return ModelLoading(f"model: '{slot.card.name}' is still loading after {waited:.0f}s; retry shortly",
                        field="model", retry_after=max(1.0, waited / 4))


class LruModelPool:
    def __init__(self, catalog: Catalog, device: torch.device, *, loader: Loader, estimator: Estimator,
                 memory_budget: int, host_budget: int = 0, pinned: tuple[str, ...] = (),
                 idle_timeout: float | None = None, load_wait_timeout: float = 120.0,
                 metrics: Metrics | None = None) -> None:
        self.catalog, self.device = catalog, device
        self.host_device = torch.device("cpu")
        self._loader, self._estimator = loader, estimator
        self.memory_budget, self.host_budget = memory_budget, host_budget
        self.idle_timeout, self.load_wait_timeout = idle_timeout, load_wait_timeout
        self.metrics = metrics or Metrics()
        self._lock = threading.RLock()
        self._slots: dict[str, _Slot] = {}
        self._loads = concurrent.futures.ThreadPoolExecutor(2, thread_name_prefix="sie-load")
        self._closed = threading.Event()
        for name in pinned:
            self._slot(name).pinned = True
        if idle_timeout:
            threading.Thread(target=self._sweep_forever, name="sie-idle-sweep", daemon=True).start()
        self._publish()

    # -- leases -----------------------------------------------------------------------------------
    async def acquire(self, name: str, timeout: float | None = None) -> Lease:
        """Hold `name` on the device for one request, loading or swapping it in if needed."""
        slot, ready = self._begin(name)
        wait = self.load_wait_timeout if timeout is None else timeout
        try:
            # A resident model is handed over at once: through wait_for it would take a loop iteration, and a
            # busy loop could turn that into a false "still loading" 503 under a short SIE_LOAD_WAIT_TIMEOUT.
            model = ready.result() if ready.done() else await asyncio.wait_for(
                asyncio.shield(asyncio.wrap_future(ready)), wait)
        except TimeoutError:
            self._end(slot)
            raise _still_loading(slot, wait) from None
        except BaseException:
            self._end(slot)
            raise
        return Lease(self, slot, model)

    def acquire_sync(self, name: str, timeout: float | None = None) -> Lease:
        slot, ready = self._begin(name)
        wait = self.load_wait_timeout if timeout is None else timeout
        try:
            model = ready.result(wait)
        except concurrent.futures.TimeoutError:
            self._end(slot)
            raise _still_loading(slot, wait) from None
        except BaseException:
            self._end(slot)
            raise
        return Lease(self, slot, model)

    def _begin(self, name: str) -> tuple[_Slot, concurrent.futures.Future]:
        with self._lock:
            slot = self._slot(name)
            if slot.tier == Tier.FAILED:
                raise without_frames(slot.error)  # the same object each time: its traceback would grow
            slot.inflight += 1
            slot.last_used = time.monotonic()
            self.metrics.inflight.labels(slot.card.name).set(slot.inflight)
            if slot.tier == Tier.DEVICE:
                done: concurrent.futures.Future = concurrent.futures.Future()
                done.set_result(slot.loaded)
                return slot, done
            if slot.tier in (Tier.UNLOADED, Tier.HOST):
                self._start_bring_up(slot)
            return slot, slot.ready

    def _end(self, slot: _Slot) -> None:
        with self._lock:
            slot.inflight -= 1
            slot.last_used = time.monotonic()
            self.metrics.inflight.labels(slot.card.name).set(slot.inflight)

    # -- admin ------------------------------------------------------------------------------------
    def load(self, name: str, timeout: float | None = None) -> dict:
        """Load (or reload after a failure) and wait; returns the model's state."""
        with self._lock:
            slot = self._slot(name)
            if slot.tier == Tier.FAILED:
                slot.tier, slot.error = Tier.UNLOADED, None
        with self.acquire_sync(name, timeout):
            pass
        return self.state(name)

    def unload(self, name: str) -> dict:
        """Drop a model from every tier; refused while it has work in flight."""
        with self._lock:
            slot = self._slot(name)
            if slot.inflight:
                raise ModelBusy(f"model: '{slot.card.name}' has {slot.inflight} requests in flight; "
                                f"retry when idle", field="model", retry_after=1.0)
            if slot.tier == Tier.LOADING:
                raise ModelBusy(f"model: '{slot.card.name}' is loading; retry when loaded", field="model",
                                retry_after=1.0)
            if slot.tier in (Tier.DEVICE, Tier.HOST):
                self.metrics.evictions.labels(slot.card.name, slot.tier.value).inc()
            self._drop(slot)
            if slot.tier == Tier.FAILED:
                slot.tier, slot.error = Tier.UNLOADED, None
            self._publish()
            return self.state(name)

    def evict_one_idle(self, exclude: str | None = None) -> bool:
        """Free device memory for an out-of-memory retry: evict the least recently used idle model."""
        with self._lock:
            victim = self._lru_victim(exclude)
            if victim is None:
                return False
            self._evict(victim)
            self._publish()
            return True

    def state(self, name: str) -> dict:
        with self._lock:
            s = self._slot(name)
            m = s.loaded
            return {"name": s.card.name, "state": s.tier.value, "device_bytes": s.device_bytes,
                    "host_bytes": s.host_bytes, "inflight": s.inflight, "pinned": s.pinned, "loads": s.loads,
                    "idle_seconds": round(time.monotonic() - s.last_used, 1) if s.last_used else None,
                    "precision": m.precision if m else None, "load_seconds": round(m.load_seconds, 3) if m else None,
                    "error": s.error.message if s.error else None}

    def states(self) -> list[dict]:
        return [self.state(card.name) for card in self.catalog]

    def usage(self) -> dict:
        with self._lock:
            return {"device": {"budget": self.memory_budget, "used": self._used(Tier.DEVICE)},
                    "host": {"budget": self.host_budget, "used": self._used(Tier.HOST)}}

    def close(self) -> None:
        self._closed.set()
        self._loads.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for slot in self._slots.values():
                self._drop(slot)

    # -- bringing a model up ----------------------------------------------------------------------
    def _start_bring_up(self, slot: _Slot) -> None:
        from_host = slot.tier == Tier.HOST
        slot.tier = Tier.LOADING
        slot.ready = concurrent.futures.Future()
        self._publish()
        self._loads.submit(self._bring_up, slot, from_host)

    def _bring_up(self, slot: _Slot, from_host: bool) -> None:
        name = slot.card.name
        try:
            if from_host:
                start = time.perf_counter()
                with self._lock:
                    slot.host_bytes = 0  # leaving the host tier: its room may go to whatever we evict now
                    self._reserve(slot, slot.loaded.footprint)
                    slot.loaded.to(self.device)
                if self.device.type == "cuda":  # the copies are non-blocking: time them, not their launch
                    torch.cuda.synchronize(self.device)
                self.metrics.swap_ins.labels(name).inc()
                self.metrics.swap_in_seconds.labels(name).observe(time.perf_counter() - start)
            else:
                estimate = self._estimator(slot.card)
                with self._lock:
                    self._reserve(slot, estimate)
                start = time.perf_counter()
                loaded = self._loader(slot.card)
                self.metrics.load_seconds.labels(name).observe(time.perf_counter() - start)
                self.metrics.loads.labels(name, "ok").inc()
                with self._lock:
                    slot.loaded, slot.loads = loaded, slot.loads + 1
                    self._reserve(slot, loaded.footprint)  # the real size; may evict more
            with self._lock:
                slot.tier = Tier.DEVICE
                slot.last_used = time.monotonic()
                self._publish()
            slot.ready.set_result(slot.loaded)
        except ResourceExhausted as e:  # not permanent: the next request may find room
            self._fail_bring_up(slot, e, permanent=False)
        except SieError as e:
            self.metrics.loads.labels(name, "failed").inc()
            self._fail_bring_up(slot, e, permanent=True)
        except Exception as e:  # a broken checkpoint must not take the server down
            self.metrics.loads.labels(name, "failed").inc()
            self._fail_bring_up(slot, ModelLoadFailed(f"{name}: {type(e).__name__}: {e}"), permanent=True)

    def _fail_bring_up(self, slot: _Slot, error: SieError, *, permanent: bool) -> None:
        log.warning("model %s unavailable: %s", slot.card.name, error.message)
        with self._lock:
            self._drop(slot)
            slot.tier = Tier.FAILED if permanent else Tier.UNLOADED
            slot.error = error if permanent else None
            ready, slot.ready = slot.ready, None
            self._publish()
        ready.set_exception(without_frames(error))

    # -- accounting and eviction (callers hold the lock) -------------------------------------------
    def _reserve(self, slot: _Slot, nbytes: int) -> None:
        """Account `nbytes` for `slot` on the device, evicting LRU idle models until it fits."""
        slot.device_bytes = 0
        while self._used(Tier.DEVICE) + nbytes > self.memory_budget:
            victim = self._lru_victim(exclude=slot.card.name)
            if victim is None:
                busy = [f"{s.card.name} ({s.device_bytes >> 20} MiB, "
                        f"{'pinned' if s.pinned else f'{s.inflight} in flight'})"
                        for s in self._slots.values() if s.device_bytes and s is not slot]
                raise ResourceExhausted(
                    f"memory: '{slot.card.name}' needs {nbytes >> 20} MiB but the device budget is "
                    f"{self.memory_budget >> 20} MiB and {self._used(Tier.DEVICE) >> 20} MiB is held by "
                    f"models that cannot be evicted now: {', '.join(busy) or 'none'}",
                    field="model", retry_after=5.0)
            self._evict(victim)
        slot.device_bytes = nbytes

    def _lru_victim(self, exclude: str | None) -> _Slot | None:
        idle = [s for s in self._slots.values()
                if s.tier == Tier.DEVICE and s.inflight == 0 and not s.pinned and s.card.name != exclude]
        return min(idle, key=lambda s: s.last_used) if idle else None

    def _evict(self, slot: _Slot) -> None:
        """Device → host when the host tier has room (dropping its own LRU entries), else dropped."""
        self.metrics.evictions.labels(slot.card.name, Tier.DEVICE.value).inc()
        size = slot.loaded.footprint if slot.loaded else slot.device_bytes
        older = sorted((s for s in self._slots.values() if s.tier == Tier.HOST), key=lambda s: s.last_used)
        if slot.loaded is not None and size <= self.host_budget:
            while self._used(Tier.HOST) + size > self.host_budget and older:
                oldest = older.pop(0)
                self.metrics.evictions.labels(oldest.card.name, Tier.HOST.value).inc()
                self._drop(oldest)
        if slot.loaded is not None and self._used(Tier.HOST) + size <= self.host_budget:
            slot.loaded.to(self.host_device, pin=self.device.type == "cuda")
            slot.tier, slot.device_bytes, slot.host_bytes = Tier.HOST, 0, size
            log.info("evicted %s to host RAM", slot.card.name)
        else:
            self._drop(slot)
            log.info("evicted %s", slot.card.name)

    def _drop(self, slot: _Slot) -> None:
        had_device = slot.device_bytes > 0
        slot.loaded, slot.device_bytes, slot.host_bytes = None, 0, 0
        if slot.tier in (Tier.DEVICE, Tier.HOST):
            slot.tier = Tier.UNLOADED
        if had_device and self.device.type == "cuda":  # on CPU, dropping the last reference frees the tensors
            gc.collect()
            torch.cuda.empty_cache()

    def _used(self, tier: Tier) -> int:
        if tier == Tier.HOST:
            return sum(s.host_bytes for s in self._slots.values())
        return sum(s.device_bytes for s in self._slots.values())

    def _slot(self, name: str) -> _Slot:
        card = self.catalog.get(name)
        slot = self._slots.get(card.name)
        if slot is None:
            slot = self._slots[card.name] = _Slot(card)
        return slot

    def _publish(self) -> None:
        m = self.metrics
        for tier in Tier:
            if tier != Tier.UNLOADED:
                m.models.labels(tier.value).set(sum(1 for s in self._slots.values() if s.tier == tier))
        for s in self._slots.values():
            m.model_bytes.labels(s.card.name, "device").set(s.device_bytes)
            m.model_bytes.labels(s.card.name, "host").set(s.host_bytes)
        m.memory_budget.labels("device").set(self.memory_budget)
        m.memory_budget.labels("host").set(self.host_budget)
        m.memory_used.labels("device").set(self._used(Tier.DEVICE))
        m.memory_used.labels("host").set(self._used(Tier.HOST))

    def _sweep_forever(self) -> None:
        period = max(0.05, min(self.idle_timeout / 4, 5.0))
        while not self._closed.wait(period):
            self.sweep_idle()

    def sweep_idle(self) -> None:
        """Evict device models idle longer than the idle timeout; drop host copies idle twice as long."""
        now = time.monotonic()
        with self._lock:
            for s in list(self._slots.values()):
                idle = now - s.last_used
                if s.tier == Tier.DEVICE and s.inflight == 0 and not s.pinned and idle > self.idle_timeout:
                    self._evict(s)
                elif s.tier == Tier.HOST and idle > 2 * self.idle_timeout:
                    self.metrics.evictions.labels(s.card.name, Tier.HOST.value).inc()
                    self._drop(s)
            self._publish()
