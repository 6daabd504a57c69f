"""What every benchmark measures with: the percentile definition and the HTTP load loop.

One definition of a percentile (linear interpolation between the closest ranks, numpy's
default) so that a p95 means the same thing in every benchmark's output, and one loop
that drives requests over keep-alive connections (:mod:`prodsearch.bench.http`).
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from prodsearch.bench import http


def percentile(values: list[float], q: float, digits: int = 2) -> float:
    """The ``q``-th percentile (0–100) of ``values``, interpolated, rounded to ``digits``;
    NaN for no values."""
    if not values:
        return float("nan")
    return round(float(np.percentile(values, q)), digits)


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: dict[str, Any] | None = None

    @property
    def endpoint(self) -> str:
        """The path's second segment (``/search/semantic`` → ``semantic``)."""
        parts = self.path.split("?")[0].split("/")
        return parts[2] if len(parts) > 2 else parts[1]


class Stop(Protocol):
    def is_set(self) -> bool: ...


# what a benchmark reads of each answer: the request, its HTTP status and body
Answered = Callable[[Request, int, bytes], None]


@dataclass
class LoadResult:
    latencies_ms: list[float] = field(default_factory=list)  # every answered request
    ok_latencies_ms: list[float] = field(default_factory=list)  # those answered 200
    statuses: Counter[int] = field(default_factory=Counter)
    by_endpoint: Counter[str] = field(default_factory=Counter)
    wall_s: float = 0.0

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200)


async def drive(
    base: str,
    requests: Callable[[int], Request | None],
    clients: int,
    seconds: float | None = None,
    stop: Stop | None = None,
    answered: Answered | None = None,
) -> LoadResult:
    """``clients`` clients, each on its own keep-alive connection, sending the next
    request as soon as their last one is answered. Request ``i`` is ``requests(i)``; the
    load ends when it returns None, after ``seconds``, or once ``stop`` is set.
    ``answered`` sees each request with its status and body (outside the timing)."""
    out = LoadResult()
    counter = iter(range(1 << 62))
    deadline = None if seconds is None else time.perf_counter() + seconds

    def over() -> bool:
        return (deadline is not None and time.perf_counter() >= deadline) or (
            stop is not None and stop.is_set()
        )

    async def client() -> None:
        async with http.Connection(base) as conn:
            while not over():
                req = requests(next(counter))
                if req is None:
                    return
                t0 = time.perf_counter()
                status, body = await conn.request(req.method, req.path, req.body)
                ms = (time.perf_counter() - t0) * 1000
                if answered is not None:
                    answered(req, status, body)
                out.latencies_ms.append(ms)
                if status == 200:
                    out.ok_latencies_ms.append(ms)
                out.statuses[status] += 1
                out.by_endpoint[req.endpoint] += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    out.wall_s = time.perf_counter() - started
    return out


def from_list(requests: list[Request]) -> Callable[[int], Request | None]:
    """Each request of the list once, in order."""
    return lambda i: requests[i] if i < len(requests) else None


__all__ = ["LoadResult", "Request", "drive", "from_list", "percentile"]
