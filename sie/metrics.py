"""Every Prometheus metric sie exports, defined here and nowhere else.

These names are a contract: KEDA autoscaling, the Grafana dashboard and the alert rules in deploy/
query exactly these, and a test scrapes a live server to check that every name they use exists.
Each Engine owns a registry, so several engines in one process (tests, benchmarks) never collide.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
LOAD_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
TOKEN_BUCKETS = (16, 64, 256, 512, 1024, 2048, 4096, 8192, 16384, 32768, 65536)
ITEM_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024)
LAG_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
PHASES = ("queue", "tokenize", "compute", "serialize")


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.requests = Counter("sie_requests_total", "HTTP requests by model, route and status code.",
                                ["model", "route", "code"], registry=r)
        self.request_seconds = Histogram("sie_request_duration_seconds", "End-to-end request latency.",
                                         ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.phase_seconds = Histogram("sie_phase_duration_seconds",
                                       "Time per request phase: queue, tokenize, compute, serialize.",
                                       ["model", "phase"], buckets=LATENCY_BUCKETS, registry=r)
        self.batch_tokens = Histogram("sie_batch_tokens", "Tokens per forward pass.", ["model"],
                                      buckets=TOKEN_BUCKETS, registry=r)
        self.batch_items = Histogram("sie_batch_items", "Sequences per forward pass.", ["model"],
                                     buckets=ITEM_BUCKETS, registry=r)
        self.queue_depth = Gauge("sie_queue_depth", "Sequences waiting in a model's queue, per lane "
                                 "(interactive, batch).", ["model", "lane"], registry=r)
        self.queue_rejections = Counter("sie_queue_rejections_total", "Requests refused with 429 (queue full), "
                                        "per lane.", ["model", "lane"], registry=r)
        self.inflight = Gauge("sie_inflight_requests", "Requests admitted and not yet answered.", ["model"],
                              registry=r)
        self.models = Gauge("sie_models", "Models per tier: device, host, loading, failed.", ["tier"], registry=r)
        self.model_bytes = Gauge("sie_model_bytes", "Resident bytes of a model in a tier.", ["model", "tier"],
                                 registry=r)
        self.memory_budget = Gauge("sie_memory_budget_bytes", "Memory budget per tier.", ["tier"], registry=r)
        self.memory_used = Gauge("sie_memory_used_bytes", "Accounted bytes per tier.", ["tier"], registry=r)
        self.loads = Counter("sie_model_loads_total", "Model loads from storage by result (ok, failed).",
                             ["model", "result"], registry=r)
        self.load_seconds = Histogram("sie_model_load_seconds", "Seconds to load a model from storage.", ["model"],
                                      buckets=LOAD_BUCKETS, registry=r)
        self.swap_ins = Counter("sie_model_swap_ins_total", "Models brought back from the host tier.", ["model"],
                                registry=r)
        self.swap_in_seconds = Histogram("sie_model_swap_in_seconds", "Seconds to bring a model back from host.",
                                         ["model"], buckets=LOAD_BUCKETS, registry=r)
        self.swap_waits = Counter("sie_model_swap_waits_total",
                                  "Bring-ups that found room only in busy models and waited for them to drain, "
                                  "by result: ok, timeout (503 after the load wait timeout), abandoned (every "
                                  "request for the model gave up first).", ["model", "result"], registry=r)
        self.evictions = Counter("sie_evictions_total", "Models evicted, by the tier they left.",
                                 ["model", "tier"], registry=r)
        self.oom_recoveries = Counter("sie_oom_recoveries_total",
                                      "Out-of-memory handling during a batch: evict, split or fail.",
                                      ["model", "action"], registry=r)
        self.preemptions = Counter("sie_preemptions_total", "Batches paused between two layers so that more "
                                   "urgent queued work ran first, by the paused batch's model.", ["model"],
                                   registry=r)
        self.event_loop_lag = Histogram("sie_event_loop_lag_seconds",
                                        "How late the server's 10 ms event-loop ticker fires (a blocked loop "
                                        "delays every request).", buckets=LAG_BUCKETS, registry=r)
        self.draining = Gauge("sie_draining", "1 while the server drains after SIGTERM.", registry=r)


def metric_names() -> set[str]:
    """Every exported series name (with the _total/_bucket/... suffixes Prometheus adds)."""
    m = Metrics()
    names: set[str] = set()
    for metric in m.registry.collect():
        for sample in metric.samples:
            names.add(sample.name)
        names.add(metric.name)
        if metric.type == "histogram":
            names.update({f"{metric.name}_bucket", f"{metric.name}_sum", f"{metric.name}_count"})
        if metric.type == "counter":
            names.add(f"{metric.name}_total")
    return names
