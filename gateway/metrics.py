"""The gateway's own Prometheus metrics (and Triton's, merged into /metrics when asked)."""

from __future__ import annotations

import os

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
    multiprocess,
)

# No `<name>_created` series beside every counter and histogram: they double the series count
# and dashboards do not use them.
disable_created_metrics()  # type: ignore[no-untyped-call]

_LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_TOKEN_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1)


class Metrics:
    """One registry per application, so tests and several apps in a process do not collide."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "gateway_requests", "HTTP requests answered", ["route", "model", "status"], registry=self.registry
        )
        self.in_flight = Gauge(
            "gateway_requests_in_flight",
            "Requests being served",
            registry=self.registry,
            multiprocess_mode="livesum",  # with --workers: the sum over live workers
        )
        self.e2e = Histogram(
            "gateway_request_duration_seconds",
            "End-to-end request time",
            ["route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.ttft = Histogram(
            "gateway_time_to_first_token_seconds",
            "Time to the first streamed token",
            ["model"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.itl = Histogram(
            "gateway_inter_token_latency_seconds",
            "Time between streamed chunks",
            ["model"],
            buckets=_TOKEN_BUCKETS,
            registry=self.registry,
        )
        self.prompt_tokens = Counter(
            "gateway_prompt_tokens", "Prompt tokens processed", ["model"], registry=self.registry
        )
        self.completion_tokens = Counter(
            "gateway_completion_tokens", "Completion tokens generated", ["model"], registry=self.registry
        )
        self.triton_errors = Counter(
            "gateway_triton_errors", "Requests Triton failed or could not take", ["code"], registry=self.registry
        )
        self.rejected = Counter(
            "gateway_rejected_requests", "Requests refused for capacity (429)", registry=self.registry
        )

    def render(self) -> bytes:
        if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):  # --workers: every worker's values, added up
            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return bytes(generate_latest(registry))
        return bytes(generate_latest(self.registry))
