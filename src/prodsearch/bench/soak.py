"""``prodsearch bench soak`` (``make soak``): sustained mixed load while the catalog changes.

``clients`` concurrent keep-alive clients send semantic, filtered, hybrid and similar
requests in turn for ``seconds`` against a served API, while a background loop keeps
changing ``churn`` product names and running an incremental ``prodsearch embed``. It
reports requests, errors (by status), p50/p99 and the server's resident memory at the
start and the end. The changed names are put back and embedded once more at the end.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from prodsearch.bench.load import LoadResult, Request, drive, percentile
from prodsearch.bench.search import FILTERS, embedded_sample
from prodsearch.bench.server import LocalServer, child_env
from prodsearch.bench.workload import benchmark_queries
from prodsearch.catalog import sql as catalog_sql
from prodsearch.catalog.source import Source, load_source
from prodsearch.config import SEARCH_ENDPOINTS, Settings
from prodsearch.db import connect, database_url

SUFFIX = " (soak)"
ENDPOINTS = tuple(e for e in SEARCH_ENDPOINTS if e != "suggest")  # searches only


@dataclass
class SoakResult:
    clients: int
    seconds: float
    products: int
    requests: int = 0
    errors: int = 0
    error_statuses: dict[str, int] = field(default_factory=dict)
    by_endpoint: dict[str, int] = field(default_factory=dict)
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    rps: float = 0.0
    rss_start_mb: float = 0.0
    rss_end_mb: float = 0.0
    rss_growth_pct: float = 0.0
    embed_runs: int = 0
    embed_failures: int = 0
    rows_changed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def _request(i: int, queries: list[str], ids: list[int]) -> Request:
    endpoint = ENDPOINTS[i % len(ENDPOINTS)]
    if endpoint == "similar":
        return Request("GET", f"/search/similar/{ids[i % len(ids)]}?limit=10")
    body: dict[str, Any] = {"query": queries[i % len(queries)], "limit": 10}
    if endpoint == "filtered":
        body["filters"] = FILTERS[i % len(FILTERS)]
    return Request("POST", f"/search/{endpoint}", body)


def _load(url: str, clients: int, seconds: float, queries: list[str], ids: list[int]) -> LoadResult:
    return asyncio.run(drive(url, lambda i: _request(i, queries, ids), clients, seconds=seconds))


def _rename(db: str, source: Source, ids: list[int], add: bool) -> int:
    """Append (or strip) the soak suffix to these products' names: a real catalog change."""
    with connect(db) as conn:
        return catalog_sql.rename(conn, source, ids, SUFFIX, add)


def _embed(settings: Settings) -> bool:
    done = subprocess.run(
        [sys.executable, "-m", "prodsearch", "embed", "--quiet"],
        env=child_env(settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    return done.returncode == 0


def _churn(
    settings: Settings,
    db: str,
    source: Source,
    ids: list[int],
    stop: threading.Event,
    result: SoakResult,
) -> None:
    add = True
    while not stop.is_set():
        result.rows_changed += _rename(db, source, ids, add)
        ok = _embed(settings)
        result.embed_runs += 1
        result.embed_failures += not ok
        add = not add


def run(
    settings: Settings,
    clients: int = 16,
    seconds: float = 60.0,
    churn: int = 500,
    progress: Callable[[str], None] = lambda _m: None,
) -> SoakResult:
    db = database_url(settings)
    with connect(db) as conn:
        source = load_source(conn, settings)
    products, ids = embedded_sample(db, max(churn, 1000))
    result = SoakResult(clients=clients, seconds=seconds, products=products)
    queries = benchmark_queries()
    with LocalServer(settings) as server:
        assert server.proc is not None
        _load(server.url, 2, 3.0, queries, ids)  # warm-up: caches, pool
        result.rss_start_mb = _rss_mb(server.proc.pid)
        stop = threading.Event()
        churn_args = (settings, db, source, ids[:churn], stop, result)
        changer = threading.Thread(target=_churn, args=churn_args)
        progress(f"soak: {clients} clients for {seconds:g} s while embedding catalog changes")
        changer.start()
        try:
            load = _load(server.url, clients, seconds, queries, ids)
        finally:
            stop.set()
            changer.join()
        result.rss_end_mb = _rss_mb(server.proc.pid)
    _rename(db, source, ids[:churn], add=False)  # put the catalog back
    _embed(settings)
    result.requests = len(load.latencies_ms)
    result.errors = load.errors
    result.error_statuses = {str(s): n for s, n in load.statuses.items() if s != 200}
    result.by_endpoint = dict(load.by_endpoint)
    result.p50_ms = percentile(load.latencies_ms, 50)
    result.p99_ms = percentile(load.latencies_ms, 99)
    result.rps = round(len(load.latencies_ms) / load.wall_s, 1)
    growth = (result.rss_end_mb - result.rss_start_mb) / max(result.rss_start_mb, 1e-9)
    result.rss_growth_pct = round(100 * growth, 1)
    return result
