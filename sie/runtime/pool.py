"""Many models on one device: on-demand loading, a memory budget, LRU eviction into a host-RAM tier.

Tiers: `device` (ready to compute) → `host` (weights kept in RAM, pinned on CUDA; swapping back
is a copy, not a load) → dropped. A model with work in flight, or pinned, is never evicted.
Concurrent requests for an unloaded model share one load and wait for it (bounded; then 503 with
Retry-After). A load that fails for good (missing or broken weights) is remembered and answered
502 until an operator reloads it; every other model keeps serving.

Fair swapping: a model that would fit if busy models were evicted does not fail at once (under steady
traffic a busy model never idles, and the other would starve). Its bring-up claims those victims and
waits, with the lock released, for them to drain: new requests for a claimed victim queue behind the
pending swap instead of keeping it busy, so it drains, is evicted, the waiting model comes up, and the
victim's queued requests start its own bring-up, which in turn claims the first model. Models take
turns. The wait is bounded by the load wait timeout and ends early when nobody waits for the model any
more. Only bring-ups wait, only on models resident or being loaded, and a bring-up waiting without
device memory is never waited upon: no cycle of waits can form (no request holds two leases).

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
    inflight: int = 0         # requests admitted and not answered: leases, and waiters for a load or a swap
    queued: int = 0           # of those, waiting behind this model's pending swap-out (they hold no lease)
    after_swap: concurrent.futures.Future | None = None  # what queued requests wait on: the next bring-up
    claims: int = 0           # bring-ups waiting for this model to drain so they can evict it
    last_used: float = 0.0
    device_bytes: int = 0     # accounted on the device (an estimate while loading)
    host_bytes: int = 0
    pinned: bool = False
    loads: int = 0

    @property
    def active(self) -> int:
        """Requests holding (or about to hold) this model on the device: eviction waits for 0."""
        return self.inflight - self.queued


@dataclass(eq=False)
class _RoomWait:
    """A bring-up waiting for busy models to drain; older waits are served first."""

    slot: _Slot
    nbytes: int
    seq: int
    claimed: list[_Slot] = field(default_factory=list)


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


BRING_UP_THREADS = 16   # bring-ups at once, waiting for room included (a thread is made only when needed)
STORAGE_LOADS = 2       # loads from storage at once: compute keeps its cores while models load

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
        self._room = threading.Condition(self._lock)   # notified on every change that may free room
        self._waits: list[_RoomWait] = []
        self._wait_seq = 0
        self._slots: dict[str, _Slot] = {}
        # A bring-up may wait on its thread for busy models to drain: waits must not keep other models' loads
        # from starting, so threads are plenty (made on demand) and storage loads are bounded separately.
        self._loads = concurrent.futures.ThreadPoolExecutor(BRING_UP_THREADS, thread_name_prefix="sie-load")
        self._storage = threading.BoundedSemaphore(STORAGE_LOADS)
        self._closed = threading.Event()
        for name in pinned:
            self._slot(name).pinned = True
        if idle_timeout:
            threading.Thread(target=self._sweep_forever, name="sie-idle-sweep", daemon=True).start()
        with self._lock:
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
            self._end(slot, ready)
            raise _still_loading(slot, wait) from None
        except BaseException:
            self._end(slot, ready)
            raise
        return Lease(self, slot, model)

    def acquire_sync(self, name: str, timeout: float | None = None) -> Lease:
        slot, ready = self._begin(name)
        wait = self.load_wait_timeout if timeout is None else timeout
        try:
            model = ready.result(wait)
        except concurrent.futures.TimeoutError:
            self._end(slot, ready)
            raise _still_loading(slot, wait) from None
        except BaseException:
            self._end(slot, ready)
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
            if slot.tier == Tier.DEVICE and slot.claims:
                # A bring-up waits for this model to drain: a new lease would keep it busy for ever. Queue
                # behind the swap, as if it were loading (the wait ends when its next bring-up does).
                slot.queued += 1
                if slot.after_swap is None:
                    slot.after_swap = concurrent.futures.Future()
                return slot, slot.after_swap
            if slot.tier == Tier.DEVICE:
                done: concurrent.futures.Future = concurrent.futures.Future()
                done.set_result(slot.loaded)
                return slot, done
            if slot.tier in (Tier.UNLOADED, Tier.HOST):
                self._start_bring_up(slot)
            return slot, slot.ready

    def _end(self, slot: _Slot, waited_on: concurrent.futures.Future | None = None) -> None:
        """A request is done with `slot` (or gave up waiting on `waited_on`)."""
        with self._lock:
            slot.inflight -= 1
            if waited_on is not None and waited_on is slot.after_swap:
                slot.queued -= 1
            slot.last_used = time.monotonic()
            self.metrics.inflight.labels(slot.card.name).set(slot.inflight)
            if slot.active == 0:  # drained (a claimed victim), or nobody waits for a bring-up any more
                self._room.notify_all()

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
        with self._lock:
            self._room.notify_all()  # bring-ups waiting for room give up now, so the shutdown below ends
        self._loads.shutdown(wait=True, cancel_futures=True)
        with self._lock:
            for slot in self._slots.values():
                self._drop(slot)

    # -- bringing a model up ----------------------------------------------------------------------
    def _start_bring_up(self, slot: _Slot) -> None:
        # Requests queued behind this model's swap-out are already waiting on after_swap: it becomes the load.
        slot.ready, slot.after_swap, slot.queued = slot.after_swap or concurrent.futures.Future(), None, 0
        if self._closed.is_set():  # close() has begun: the loader pool takes no more work
            self._drop(slot)
            slot.ready.set_exception(ModelLoading(f"model: '{slot.card.name}' is not loaded: the engine is "
                                                  f"shutting down", field="model", retry_after=1.0))
            return
        from_host = slot.tier == Tier.HOST
        slot.tier = Tier.LOADING
        self._publish()
        self._loads.submit(self._bring_up, slot, from_host)

    def _bring_up(self, slot: _Slot, from_host: bool) -> None:
        name = slot.card.name
        try:
            if from_host:
                start = time.perf_counter()
                with self._lock:
                    waited = self._reserve(slot, slot.loaded.footprint, leaving_host=True)
                    slot.loaded.to(self.device)
                if self.device.type == "cuda":  # the copies are non-blocking: time them, not their launch
                    torch.cuda.synchronize(self.device)
                self.metrics.swap_ins.labels(name).inc()
                self.metrics.swap_in_seconds.labels(name).observe(time.perf_counter() - start - waited)
            else:
                estimate = self._estimator(slot.card)
                with self._lock:
                    self._reserve(slot, estimate)
                with self._storage:
                    start = time.perf_counter()
                    loaded = self._loader(slot.card)
                self.metrics.load_seconds.labels(name).observe(time.perf_counter() - start)
                self.metrics.loads.labels(name, "ok").inc()
                with self._lock:
                    slot.loaded, slot.loads = loaded, slot.loads + 1
                    # The real size; may evict more. The weights are on the device now: wait only for resident
                    # models, never for other loads (they may be waiting for this one's memory).
                    self._reserve(slot, loaded.footprint, holding=True)
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
    def _reserve(self, slot: _Slot, nbytes: int, *, holding: bool = False, leaving_host: bool = False) -> float:
        """Account `nbytes` for `slot` on the device, evicting LRU idle models until it fits.

        If it would fit but for busy models (resident or loading), wait for them to drain, releasing the lock,
        up to the load wait timeout; returns the seconds waited. `holding`: the slot's weights already occupy
        its accounted bytes on the device, so it waits only for resident models. `leaving_host`: its host-tier
        room goes to whatever is evicted now.
        """
        wait: _RoomWait | None = None
        began = time.monotonic()
        deadline = began + self.load_wait_timeout
        result = "timeout"
        try:
            while True:
                if self._fits_now(slot, nbytes) and not self._older_wait_fits(wait):
                    if leaving_host:
                        slot.host_bytes = 0
                    drained = [s for s in wait.claimed if s.tier == Tier.DEVICE and s.active == 0] if wait else []
                    while self._used(Tier.DEVICE) - slot.device_bytes + nbytes > self.memory_budget:
                        # The models waited for go first: an idle model that was not needed stays.
                        victim = drained.pop(0) if drained else self._lru_victim(exclude=slot.card.name)
                        if victim is None:  # cannot happen while _fits_now agrees with _lru_victim
                            raise self._no_room(slot, nbytes)
                        self._evict(victim)
                    slot.device_bytes, result = nbytes, "ok"
                    return time.monotonic() - began if wait is not None else 0.0
                if not self._could_fit(slot, nbytes, wait_for_loads=not holding):
                    raise self._no_room(slot, nbytes)  # too big, or blocked by pinned models: waiting won't help
                if slot.inflight == 0 or self._closed.is_set():
                    result = "abandoned"  # every request for it gave up (or the pool closes): stop holding claims
                    raise self._no_room(slot, nbytes)
                left = deadline - time.monotonic()
                if left <= 0:
                    raise self._no_room(slot, nbytes)
                if wait is None:
                    self._wait_seq += 1
                    wait = _RoomWait(slot, nbytes, self._wait_seq)
                    self._waits.append(wait)
                    log.info("%s waits for busy models to drain to get %d MiB", slot.card.name, nbytes >> 20)
                self._claim_victims(wait)
                self._room.wait(min(left, 1.0))  # releases the lock; the timeout only guards against a lost wake-up
        finally:
            if wait is not None:
                self._waits.remove(wait)
                self._set_claims(wait, [])
                self.metrics.swap_waits.labels(slot.card.name, result).inc()
                self._room.notify_all()  # a younger wait may have been yielding to this one

    def _no_room(self, slot: _Slot, nbytes: int) -> ResourceExhausted:
        busy = [f"{s.card.name} ({s.device_bytes >> 20} MiB, {'pinned' if s.pinned else f'{s.active} in flight'})"
                for s in self._slots.values() if s.device_bytes and s is not slot]
        return ResourceExhausted(
            f"memory: '{slot.card.name}' needs {nbytes >> 20} MiB but the device budget is "
            f"{self.memory_budget >> 20} MiB and {(self._used(Tier.DEVICE) - slot.device_bytes) >> 20} MiB is held "
            f"by models that cannot be evicted now: {', '.join(busy) or 'none'}", field="model", retry_after=5.0)

    def _evictable(self, exclude: _Slot | None) -> list[_Slot]:
        return [s for s in self._slots.values() if s.tier == Tier.DEVICE and not s.pinned and s is not exclude]

    def _fits_now(self, slot: _Slot, nbytes: int) -> bool:
        """Free room plus idle resident models is enough for `slot`."""
        idle = sum(s.device_bytes for s in self._evictable(slot) if s.active == 0)
        return self._used(Tier.DEVICE) - slot.device_bytes - idle + nbytes <= self.memory_budget

    def _could_fit(self, slot: _Slot, nbytes: int, *, wait_for_loads: bool) -> bool:
        """`slot` would fit if every model that can drain were evicted (pinned ones never are)."""
        fixed = sum(s.device_bytes for s in self._slots.values()
                    if s is not slot and (s.pinned or (s.tier != Tier.DEVICE and not wait_for_loads)))
        return fixed + nbytes <= self.memory_budget

    def _older_wait_fits(self, wait: _RoomWait | None) -> bool:
        """An older waiting bring-up can proceed now: it goes first (the room is its turn)."""
        mine = wait.seq if wait is not None else self._wait_seq + 1
        return any(w.seq < mine and self._fits_now(w.slot, w.nbytes) for w in self._waits)

    def _claim_victims(self, wait: _RoomWait) -> None:
        """Claim the models whose eviction makes room: as few busy ones as the idle ones leave needed (LRU
        first), then the idle ones still needed. An idle model is claimed too, or a new request would make it
        busy again before the wait's turn comes. Models an older wait claimed are left to it: their room is
        spoken for, so two waits drain two models at once."""
        need = self._used(Tier.DEVICE) - wait.slot.device_bytes + wait.nbytes - self.memory_budget
        taken = {id(v) for w in self._waits if w.seq < wait.seq for v in w.claimed}
        free = sorted((s for s in self._evictable(wait.slot) if id(s) not in taken), key=lambda s: s.last_used)
        idle, busy = [s for s in free if s.active == 0], [s for s in free if s.active]
        spare = sum(s.device_bytes for s in idle)
        victims = []
        for s in busy:
            if need <= spare:
                break
            need -= s.device_bytes
            victims.append(s)
        for s in idle:
            if need <= 0:
                break
            need -= s.device_bytes
            victims.append(s)
        self._set_claims(wait, victims)

    def _set_claims(self, wait: _RoomWait, victims: list[_Slot]) -> None:
        # Claim the new set before releasing the old, so a victim kept across re-plans never flaps free.
        for s in victims:
            s.claims += 1
        for s in wait.claimed:
            s.claims -= 1
            if s.claims == 0 and s.after_swap is not None and s.tier == Tier.DEVICE:
                # Nobody waits for it to drain any more: its queued requests take it as it is.
                ready, s.after_swap, s.queued = s.after_swap, None, 0
                ready.set_result(s.loaded)
        wait.claimed = victims

    def _lru_victim(self, exclude: str | None) -> _Slot | None:
        idle = [s for s in self._slots.values()
                if s.tier == Tier.DEVICE and s.active == 0 and not s.pinned and s.card.name != exclude]
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
        if slot.queued:  # requests queued behind this swap-out: bring it back (it waits its turn for room)
            self._start_bring_up(slot)
        slot.after_swap = None

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
        """The slots changed (caller holds the lock): export it, and wake bring-ups waiting for room."""
        self._room.notify_all()
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
                if s.tier == Tier.DEVICE and s.active == 0 and not s.pinned and idle > self.idle_timeout:
                    self._evict(s)
                elif s.tier == Tier.HOST and idle > 2 * self.idle_timeout:
                    self.metrics.evictions.labels(s.card.name, Tier.HOST.value).inc()
                    self._drop(s)
            self._publish()
