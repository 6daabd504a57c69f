"""Prometheus text-format metrics, kept in-process (no extra dependency)."""

from __future__ import annotations

import threading
from collections import defaultdict

BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class Metrics:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self.latency: dict[str, list[int]] = {}
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.latency_count: dict[str, int] = defaultdict(int)

    def observe(self, endpoint: str, method: str, status: int, seconds: float) -> None:
        with self._lock:
            self.requests[(endpoint, method, status)] += 1
            buckets = self.latency.setdefault(endpoint, [0] * len(BUCKETS))
            for i, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    buckets[i] += 1
            self.latency_sum[endpoint] += seconds
            self.latency_count[endpoint] += 1

    def render(self, extra: dict[str, float]) -> str:
        lines = [
            "# HELP prodsearch_requests_total HTTP requests by endpoint, method and status.",
            "# TYPE prodsearch_requests_total counter",
        ]
        with self._lock:
            for (endpoint, method, status), n in sorted(self.requests.items()):
                lines.append(
                    f'prodsearch_requests_total{{endpoint="{endpoint}",method="{method}",'
                    f'status="{status}"}} {n}'
                )
            lines += [
                "# HELP prodsearch_request_duration_seconds Request latency by endpoint.",
                "# TYPE prodsearch_request_duration_seconds histogram",
            ]
            for endpoint, buckets in sorted(self.latency.items()):
                for bound, n in zip(BUCKETS, buckets, strict=True):
                    lines.append(
                        f'prodsearch_request_duration_seconds_bucket{{endpoint="{endpoint}",'
                        f'le="{bound}"}} {n}'
                    )
                count = self.latency_count[endpoint]
                lines.append(
                    f'prodsearch_request_duration_seconds_bucket{{endpoint="{endpoint}",'
                    f'le="+Inf"}} {count}'
                )
                lines.append(
                    f'prodsearch_request_duration_seconds_sum{{endpoint="{endpoint}"}} '
                    f"{self.latency_sum[endpoint]:.6f}"
                )
                lines.append(
                    f'prodsearch_request_duration_seconds_count{{endpoint="{endpoint}"}} {count}'
                )
        for name, value in extra.items():
            lines.append(f"# TYPE prodsearch_{name} counter")
            lines.append(f"prodsearch_{name} {value}")
        return "\n".join(lines) + "\n"
