"""Prometheus metrics, in a registry owned by one app.

prometheus-client's default registry is process-global: two apps in one process (tests, or a
multi-model host) would collide on metric names. Each `Metrics` owns its `CollectorRegistry`,
and `/metrics` renders only that one.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)
STEP_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
NFE_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)


class Metrics:
    content_type = CONTENT_TYPE_LATEST

    def __init__(self):
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("evotoken_requests", "HTTP requests by route and status code",
                                ["route", "status"], registry=r)
        self.queue_depth = Gauge("evotoken_queue_depth", "Rows waiting for a batch slot", registry=r)
        self.active_rows = Gauge("evotoken_active_rows", "Rows in the running batch", registry=r)
        self.batch_cap = Gauge("evotoken_batch_cap", "Most rows allowed to share a step now: the "
                               "configured maximum, lowered for a while after a step runs out of memory",
                               registry=r)
        self.step_seconds = Histogram("evotoken_step_seconds", "Latency of one refinement step (one "
                                      "forward pass over the batch)", buckets=STEP_BUCKETS, registry=r)
        self.request_seconds = Histogram("evotoken_request_seconds", "End-to-end latency of generation "
                                         "requests", ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.first_text_seconds = Histogram("evotoken_time_to_first_text_seconds", "Time from arrival "
                                            "to the first confirmed text of a request",
                                            buckets=LATENCY_BUCKETS, registry=r)
        self.nfe = Histogram("evotoken_request_nfe", "Forward passes spent on one row (one choice)",
                             buckets=NFE_BUCKETS, registry=r)
        self.prompt_tokens = Counter("evotoken_prompt_tokens", "Prompt tokens of completed requests", registry=r)
        self.generated_tokens = Counter("evotoken_generated_tokens", "Completion tokens returned to clients",
                                        registry=r)
        self.row_outcomes = Counter("evotoken_rows", "Rows by how they ended", ["outcome"], registry=r)

    def track_engine(self, queue_depth: Callable[[], float], active_rows: Callable[[], float],
                     batch_cap: Callable[[], float]) -> None:
        """Read the gauges from the worker at scrape time, so they are never stale."""
        self.queue_depth.set_function(queue_depth)
        self.active_rows.set_function(active_rows)
        self.batch_cap.set_function(batch_cap)

    def render(self) -> bytes:
        return generate_latest(self.registry)
