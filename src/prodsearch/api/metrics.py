"""Prometheus metrics through ``prometheus-client``.

One process: the app's own registry. Several (``prodsearch serve --workers N``): the
client's multiprocess mode — ``serve`` points ``PROMETHEUS_MULTIPROC_DIR`` at an empty
folder before the workers start, every worker writes its samples there, and a scrape of
any worker sums them all.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from prodsearch.search.results import SearchTimings
from prodsearch.watch.capture import WatchFigures
from prodsearch.watch.worker import LAG_BUCKETS

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def prepare_multiprocess(folder: Path) -> None:
    """Before the workers start: an empty samples folder, named in the environment they
    inherit (samples of an earlier server would otherwise be summed in)."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    os.environ[MULTIPROC_ENV] = str(folder)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter(
            "prodsearch_requests",
            "HTTP requests by endpoint, method and status.",
            ["endpoint", "method", "status"],
            registry=r,
        )
        self.latency = Histogram(
            "prodsearch_request_duration_seconds",
            "Request latency by endpoint.",
            ["endpoint"],
            buckets=BUCKETS,
            registry=r,
        )
        self.embed_seconds = Counter(
            "prodsearch_embed_seconds", "Time spent embedding queries.", registry=r
        )
        self.search_seconds = Counter(
            "prodsearch_search_seconds", "Time spent in search SQL.", registry=r
        )
        self.cache_hits = Counter(
            "prodsearch_query_cache_hits", "Query embeddings served from the cache.", registry=r
        )
        self.cache_misses = Counter(
            "prodsearch_query_cache_misses", "Query embeddings computed.", registry=r
        )

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(endpoint, method, str(status)).inc()
        self.latency.labels(endpoint).observe(seconds)

    def observe_search(self, timings: SearchTimings) -> None:
        """A search's own timings (its response's ``timings``)."""
        self.embed_seconds.inc(timings.embed_ms / 1000)
        self.search_seconds.inc(timings.search_ms / 1000)
        cached = timings.cached_embedding
        if cached is True:
            self.cache_hits.inc()
        elif cached is False:
            self.cache_misses.inc()

    def render_watch(self, figures: WatchFigures) -> bytes:
        """Continuous sync, read from the database at scrape time (so every worker, on
        any machine, is counted): queue depth and age, the workers' counters, and the
        histogram of lag from a catalog change's capture to its committed embedding."""
        registry = CollectorRegistry()
        registry.register(_WatchCollector(figures))
        return generate_latest(registry)

    def render(self) -> bytes:
        """The text exposition: this process's registry, or every worker's samples."""
        if os.environ.get(MULTIPROC_ENV):
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry)
        return generate_latest(self.registry)


class _WatchCollector(Collector):
    def __init__(self, figures: WatchFigures) -> None:
        self.f = figures

    def collect(self) -> Iterator[Metric]:
        f = self.f
        yield GaugeMetricFamily(
            "prodsearch_watch_queue_depth", "Catalog changes waiting to be embedded.", f.queued
        )
        yield GaugeMetricFamily(
            "prodsearch_watch_oldest_pending_seconds",
            "Age of the oldest change waiting to be embedded (0 when none).",
            f.oldest_s or 0.0,
        )
        yield GaugeMetricFamily(
            "prodsearch_watch_workers", "Workers seen in the last minute.", f.workers
        )
        yield GaugeMetricFamily(
            "prodsearch_watch_failed_items",
            "Products whose write failed: retried with backoff, or set aside (watch status).",
            f.failed,
        )
        for name, help_text, value in (
            ("batches", "Batches committed by the workers.", f.batches),
            ("embedded", "Rows written with a new vector (rate(): embeds per second).", f.embedded),
            ("refreshed", "Rows whose text was unchanged (hashes refreshed).", f.refreshed),
            ("deleted", "Embeddings removed for deleted products.", f.deleted),
            ("errors", "Batches that failed (rolled back, retried).", f.errors),
            ("busy_seconds", "Seconds the workers spent in batches.", f.busy_s),
        ):
            yield CounterMetricFamily(f"prodsearch_watch_{name}", help_text, value=value)
        buckets = list(f.lag_buckets) or [0] * (len(LAG_BUCKETS) + 1)
        bounds = [*(str(b) for b in LAG_BUCKETS), "+Inf"]
        yield HistogramMetricFamily(
            "prodsearch_watch_lag_seconds",
            "From a catalog change's capture to its committed embedding.",
            buckets=list(zip(bounds, [float(b) for b in buckets], strict=False)),
            sum_value=f.lag_sum,
        )
