"""``prodsearch bench search``: latency, throughput and recall of the HTTP API.

Runs the 480 WANDS queries plus catalog-domain queries (English and Polish) against a
served API — a server this command starts on a free local port (query-embedding cache
off, so every request pays for its embedding), or ``--url`` — at concurrency 1 and 8,
per endpoint. Recall@10 compares the API's semantic results with exact (brute-force)
search of the same query vector. The baseline, measured in the same run, is the
original platform's path: sentence-transformers encoding of the query plus an exact
scan (no index).
"""

from __future__ import annotations

import asyncio
import os
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from typing import Any

import httpx
import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

from prodsearch.bench.baseline import sentence_transformer
from prodsearch.bench.index import EPSILON
from prodsearch.bench.queries import benchmark_queries, recall_sample
from prodsearch.catalog.source import Source, load_source
from prodsearch.config import Settings
from prodsearch.db import connect, database_url
from prodsearch.embedding import querymap
from prodsearch.embedding.encoder import load_encoder
from prodsearch.embedding.store import EMBEDDINGS

FILTERS: tuple[dict[str, Any], ...] = (
    {"category": "Brake Pads"},
    {"in_stock": True, "price_max": 200},
    {"brand": ["Bosch", "TRW"]},
    {"category": "Spark Plugs", "brand": "NGK"},
    {"category": ["Oil Filters", "Air Filters"], "price_min": 30},
)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LocalServer:
    """`prodsearch serve` in a subprocess on a free port, with ``env`` added to this
    process's environment; waits for ``/health`` 200 and always stops the server."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = {**os.environ, **env}
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> LocalServer:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "prodsearch", "serve", "--port", str(self.port)],
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        try:
            self._wait_healthy()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _wait_healthy(self, timeout: float = 180) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited: {self.proc.stderr.read().decode()[-2000:]}")
            try:
                if httpx.get(self.url + "/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"server did not answer /health with 200 within {timeout:.0f} s")

    def __exit__(self, *_exc: object) -> None:
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def _requests(endpoint: str, queries: list[str], ids: list[int]) -> list[tuple[str, str, Any]]:
    if endpoint == "similar":
        return [("GET", f"/search/similar/{pid}?limit=10", None) for pid in ids]
    reqs = []
    for i, q in enumerate(queries):
        body: dict[str, Any] = {"query": q, "limit": 10}
        if endpoint == "filtered":
            body["filters"] = FILTERS[i % len(FILTERS)]
        reqs.append(("POST", f"/search/{endpoint}", body))
    return reqs


async def _load(
    base: str, reqs: list[tuple[str, str, Any]], concurrency: int
) -> tuple[list[float], float, int]:
    latencies: list[float] = []
    errors = 0
    todo = iter(reqs)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=base, timeout=30, limits=limits) as client:

        async def worker() -> None:
            nonlocal errors
            for method, path, body in todo:
                t0 = time.perf_counter()
                res = await client.request(method, path, json=body)
                latencies.append((time.perf_counter() - t0) * 1000)
                errors += res.status_code != 200

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - started
    return latencies, wall, errors


def _pct(values: list[float], q: float) -> float:
    return round(float(np.percentile(values, q)), 2)


def _exact_top(
    conn: psycopg.Connection[Any], source: Source, vec: np.ndarray
) -> list[tuple[int, float]]:
    """Brute force over the live products of the configured source: index scans off, so no
    HNSW index (of either shape) can answer."""
    with conn.transaction():
        conn.execute("SET LOCAL enable_indexscan = off")
        return conn.execute(
            sql.SQL(
                "SELECT e.product_id, e.embedding <=> %s FROM {emb} AS e "
                "JOIN {src} AS s ON s.{id} = e.product_id WHERE {eligible} ORDER BY 2 LIMIT 10"
            ).format(
                emb=EMBEDDINGS,
                src=source.qualified,
                id=sql.Identifier(source.id_column),
                eligible=source.eligible_sql(),
            ),
            (vec,),
        ).fetchall()


def _by_filter_set(url: str, queries: list[str], per_set: int = 100) -> list[dict[str, Any]]:
    """Concurrency 1, each filter set alone: its latency, matching products and the path
    the service chose (``timings.strategy``)."""
    out = []
    with httpx.Client(base_url=url, timeout=30) as client:
        for filters in FILTERS:
            lat, strategies = [], set()
            for q in queries[:: max(1, len(queries) // per_set)][:per_set]:
                t0 = time.perf_counter()
                res = client.post(
                    "/search/filtered", json={"query": q, "limit": 10, "filters": filters}
                )
                lat.append((time.perf_counter() - t0) * 1000)
                strategies.add(res.json()["timings"]["strategy"])
            out.append(
                {
                    "filters": filters,
                    "requests": len(lat),
                    "p50_ms": _pct(lat, 50),
                    "p95_ms": _pct(lat, 95),
                    "strategy": "/".join(sorted(strategies)),
                }
            )
    return out


def _recall(db: str, url: str, enc: Any, settings: Settings, n: int) -> dict[str, Any]:
    """Recall@10 of ``/search/semantic`` against brute force of the same query vector, per
    query set: strict (tie-aware) and ε-recall (ann-benchmarks, ε = 0.01).

    The sample holds every catalog-domain query and evenly spaced WANDS queries. The query
    vector is rebuilt here the way the API builds it (the text it embedded, from
    ``explain``, through the stored query map). A returned product counts when its exact
    float32 distance is no larger than the 10th exact neighbour's (strict: equal vectors
    tie) or than 1.01 times it (ε).
    """
    sample = recall_sample(n)
    hits: dict[str, list[float]] = {"wands": [], "catalog": []}
    eps: list[float] = []
    id_hits = 0
    with connect(db) as conn, httpx.Client(base_url=url, timeout=30) as client:
        source = load_source(conn, settings)
        qmap = querymap.load(conn, enc.model_name, settings.mode)
        register_vector(conn)
        for kind, q in sample:
            got = client.post(
                "/search/semantic", json={"query": q, "limit": 10, "explain": True}
            ).json()
            ids = [r["product_id"] for r in got["results"]]
            vec = enc.encode([got["explain"]["semantic_text"]])[0]
            if qmap is not None:
                vec = qmap.apply(vec)
            exact = _exact_top(conn, source, vec)
            kth = exact[-1][1]
            dist = dict(
                conn.execute(
                    "SELECT product_id, embedding <=> %s "
                    "FROM analytics_features.product_embeddings "
                    "WHERE product_id = ANY(%s)",
                    (vec, ids),
                ).fetchall()
            )
            hits[kind].append(sum(dist[i] <= kth + 1e-9 for i in ids) / 10)
            eps.append(sum(dist[i] <= (1 + EPSILON) * kth + 1e-9 for i in ids) / 10)
            id_hits += len(set(ids) & {e[0] for e in exact})
    every = hits["wands"] + hits["catalog"]
    return {
        "all": round(statistics.fmean(every), 4),
        "eps": round(statistics.fmean(eps), 4),
        "wands": round(statistics.fmean(hits["wands"]), 4),
        "catalog": round(statistics.fmean(hits["catalog"]), 4),
        "ids": round(id_hits / (10 * len(every)), 4),
        "queries": len(every),
    }


def run(
    settings: Settings,
    url: str | None = None,
    concurrencies: tuple[int, ...] = (1, 8),
    endpoints: tuple[str, ...] = ("semantic", "filtered", "hybrid", "similar"),
    recall_queries: int = 200,
    baseline_queries: int = 30,
    progress: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    queries = benchmark_queries()
    db = database_url(settings)
    with connect(db) as conn:
        products = conn.execute(
            "SELECT count(*) FROM analytics_features.product_embeddings"
        ).fetchone()[0]  # type: ignore[index]
        ids = [
            r[0]
            for r in conn.execute(
                "SELECT product_id FROM analytics_features.product_embeddings "
                "ORDER BY md5(product_id::text) LIMIT %s",
                (len(queries),),
            )
        ]
    result: dict[str, Any] = {
        "embeddings": products,
        "queries": len(queries),
        "mode": settings.mode,
        "query_mode": settings.query_mode,
        "endpoints": [],
    }
    # our own server: embedding cache off, so every request pays for its embedding
    own = {
        "PRODSEARCH_QUERY_CACHE_SIZE": "0",
        "PRODSEARCH_MODE": settings.mode,
        "PRODSEARCH_QUERY_MODE": settings.query_mode,
        "PRODSEARCH_HOME": str(settings.home_dir),
    }
    with LocalServer(own) if url is None else nullcontext() as server:
        url = url or server.url
        for endpoint in endpoints:
            reqs = _requests(endpoint, queries, ids)
            asyncio.run(_load(url, reqs[:20], 2))  # warm-up
            for conc in concurrencies:
                lat, wall, errors = asyncio.run(_load(url, reqs, conc))
                row = {
                    "endpoint": endpoint,
                    "concurrency": conc,
                    "requests": len(lat),
                    "errors": errors,
                    "p50_ms": _pct(lat, 50),
                    "p95_ms": _pct(lat, 95),
                    "p99_ms": _pct(lat, 99),
                    "rps": round(len(lat) / wall, 1),
                }
                result["endpoints"].append(row)
                progress(
                    f"{endpoint} c={conc}: p50 {row['p50_ms']} ms, p95 {row['p95_ms']} ms, "
                    f"{row['rps']} req/s"
                )
        if "filtered" in endpoints:
            result["filter_sets"] = _by_filter_set(url, queries)
            for f in result["filter_sets"]:
                progress(
                    f"filtered {f['filters']}: p50 {f['p50_ms']} ms, p95 {f['p95_ms']} ms, "
                    f"{f['strategy']}"
                )
        # recall@10 of the API's semantic results against exact search of the same vector
        if recall_queries:
            # the API's query encoder (query_mode) and the documents' query map (mode)
            enc = load_encoder(settings.query_mode, settings.model, models_dir=settings.models_dir)
            result["recall"] = rec = _recall(db, url, enc, settings, recall_queries)
            progress(
                f"recall@10 {rec['all']} (tie-aware; WANDS {rec['wands']}, catalog "
                f"{rec['catalog']}), eps-recall {rec['eps']}, {rec['ids']} (ids)"
            )
    result["baseline"] = _baseline(db, queries[:baseline_queries], progress)
    sem = [r for r in result["endpoints"] if r["endpoint"] == "semantic" and r["concurrency"] == 1]
    # the baseline is the original semantic path: a ratio only against our semantic endpoint
    result["baseline"]["ratio_p50"] = (
        round(result["baseline"]["p50_ms"] / sem[0]["p50_ms"], 1) if sem else None
    )
    return result


def _baseline(db: str, queries: list[str], progress: Callable[[str], None]) -> dict[str, Any]:
    """Original path: sentence-transformers query encoding + exact scan, in-process."""
    model = sentence_transformer()
    lat = []
    with connect(db) as conn:
        register_vector(conn)
        for q in queries:
            t0 = time.perf_counter()
            vec = model.encode([q], normalize_embeddings=True)[0]
            _exact_top(conn, vec)
            lat.append((time.perf_counter() - t0) * 1000)
    out = {
        "method": "sentence-transformers + exact scan",
        "queries": len(lat),
        "p50_ms": round(statistics.median(lat), 1),
        "p95_ms": _pct(lat, 95),
    }
    progress(f"baseline: p50 {out['p50_ms']} ms")
    return out
