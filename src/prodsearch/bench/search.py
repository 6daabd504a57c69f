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
import statistics
import time
from collections import Counter
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlencode

import httpx
import orjson
from pgvector.psycopg import register_vector

from prodsearch.bench.against import against
from prodsearch.bench.baseline import sentence_transformer
from prodsearch.bench.load import Request, drive, from_list, percentile
from prodsearch.bench.server import LocalServer
from prodsearch.bench.workload import benchmark_queries, recall_sample
from prodsearch.catalog.source import load_source
from prodsearch.config import Settings
from prodsearch.db import connect, database_url, migrate
from prodsearch.embedding import modes, store
from prodsearch.search import recall
from prodsearch.search.setup import build_searcher

FILTERS: tuple[dict[str, Any], ...] = (
    {"category": "Brake Pads"},
    {"in_stock": True, "price_max": 200},
    {"brand": ["Bosch", "TRW"]},
    {"category": "Spark Plugs", "brand": "NGK"},
    {"category": ["Oil Filters", "Air Filters"], "price_min": 30},
)


@dataclass(frozen=True)
class EndpointLoad:
    endpoint: str
    concurrency: int
    requests: int
    errors: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    rps: float


@dataclass(frozen=True)
class FilterSetLatency:
    filters: dict[str, Any]  # the filters; {} for a kind built per query (``against``)
    requests: int
    p50_ms: float
    p95_ms: float
    strategy: str  # the path(s) the service chose: exact, index, or how many took each
    against: str = ""  # a kind of filter that runs against the query (bench.against)


@dataclass(frozen=True)
class Recall:
    all: float  # tie-aware recall@10, every query
    eps: float  # ε-recall@10 (ε = 0.01)
    wands: float  # tie-aware, WANDS queries
    catalog: float  # tie-aware, catalog-domain queries
    ids: float  # plain id overlap with the exact top 10
    queries: int


@dataclass
class Baseline:
    method: str
    queries: int
    p50_ms: float
    p95_ms: float
    ratio_p50: float | None = None  # baseline p50 / our semantic p50 at concurrency 1


@dataclass
class SearchBench:
    embeddings: int
    queries: int
    mode: str
    query_mode: str
    client: str
    endpoints: list[EndpointLoad] = field(default_factory=list)
    filter_sets: list[FilterSetLatency] = field(default_factory=list)
    recall: Recall | None = None
    baseline: Baseline | None = None

    def p95_ratios(self) -> dict[str, float]:
        """p95 of each other endpoint over semantic's, both at concurrency 1 (this run)."""
        c1 = {r.endpoint: r.p95_ms for r in self.endpoints if r.concurrency == 1}
        base = c1.get("semantic")
        if not base:
            return {}
        return {e: round(v / base, 2) for e, v in c1.items() if e != "semantic"}

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "p95_vs_semantic": self.p95_ratios()}


Against = list[tuple[str, str, dict[str, Any]]]  # (query, kind, filters): bench.against


def prefixes(queries: list[str]) -> list[str]:
    """What a shopper has typed on the way to each query: a prefix of 1 to 12 characters
    (the length cycling through them, so every length is measured)."""
    out = []
    for i, q in enumerate(queries):
        cut = q[: 1 + i % 12].strip()
        out.append(cut or q[:1])
    return out


def _requests(
    endpoint: str, queries: list[str], ids: list[int], against: Against | None = None
) -> list[Request]:
    """The requests of one endpoint's load. Filtered: every other query with one of
    :data:`FILTERS` in turn, the others with a filter built against that query."""
    if endpoint == "similar":
        return [Request("GET", f"/search/similar/{pid}?limit=10") for pid in ids]
    if endpoint == "suggest":
        return [
            Request("GET", f"/suggest?{urlencode({'q': p, 'limit': 8})}") for p in prefixes(queries)
        ]
    built = {q: f for q, _kind, f in against or []}
    reqs = []
    for i, q in enumerate(queries):
        body: dict[str, Any] = {"query": q, "limit": 10}
        if endpoint == "filtered":
            body["filters"] = (
                built.get(q) if i % 2 and q in built else FILTERS[i // 2 % len(FILTERS)]
            )
        reqs.append(Request("POST", f"/search/{endpoint}", body))
    return reqs


async def _by_filter_set(
    url: str, queries: list[str], against: Against, per_set: int = 100
) -> list[FilterSetLatency]:
    """Concurrency 1, each filter set alone, then each kind of filter built against the
    query: its latency and the path(s) the service chose (``timings.strategy``)."""
    sample = queries[:: max(1, len(queries) // per_set)][:per_set]
    groups: list[tuple[dict[str, Any], str, list[tuple[str, dict[str, Any]]]]] = [
        (filters, "", [(q, filters) for q in sample]) for filters in FILTERS
    ]
    for kind in dict.fromkeys(k for _q, k, _f in against):
        cases = [(q, f) for q, k, f in against if k == kind]
        groups.append(({}, kind, cases[:: max(1, len(cases) // per_set)][:per_set]))
    out = []
    for filters, kind, cases in groups:
        paths: Counter[str] = Counter()

        def count(_req: Request, _status: int, data: bytes, paths: Counter[str] = paths) -> None:
            timings = orjson.loads(data)["timings"]
            paths[timings["strategy"]] += 1
            paths["widened"] += bool(timings.get("widened"))

        reqs = [
            Request("POST", "/search/filtered", {"query": q, "limit": 10, "filters": f})
            for q, f in cases
        ]
        lat = (await drive(url, from_list(reqs), 1, answered=count)).latencies_ms
        out.append(
            FilterSetLatency(
                filters, len(lat), percentile(lat, 50), percentile(lat, 95), _paths(paths), kind
            )
        )
    return out


def _paths(paths: Counter[str]) -> str:
    """``exact`` / ``index`` when one path ran; else how many took each (``exact 62,
    index 38``), and how many were rerun (``widened 3``)."""
    ran = {p: n for p, n in sorted(paths.items()) if p != "widened" and n}
    text = next(iter(ran)) if len(ran) == 1 else ", ".join(f"{p} {n}" for p, n in ran.items())
    return text + (f", widened {paths['widened']}" if paths["widened"] else "")


def _against(db: str, settings: Settings, queries: list[str]) -> Against:
    """Per query, a filter built against its neighbourhood (:mod:`bench.against`)."""
    with connect(db) as conn:
        register_vector(conn)
        searcher = build_searcher(conn, settings)
        return against(conn, searcher, queries)


def _recall(db: str, url: str, settings: Settings, n: int) -> Recall:
    """Recall@10 of ``/search/semantic`` against brute force of the same query vector, per
    query set: strict (tie-aware) and ε-recall (ann-benchmarks, ε = 0.01).

    The sample holds every catalog-domain query and evenly spaced WANDS queries. The query
    vector is rebuilt here the way the API builds it (the text it embedded, from
    ``explain``, through the stored query map). A returned product counts when its exact
    float32 distance is no larger than the 10th exact neighbour's (strict: equal vectors
    tie) or than 1.01 times it (ε).
    """
    sample = recall_sample(n)
    tally = recall.RecallTally()
    with connect(db) as conn, httpx.Client(base_url=url, timeout=30) as client:
        # the API's query vectors: its query encoder and the documents' query map
        searcher = build_searcher(conn, settings)
        register_vector(conn)
        for kind, q in sample:
            got = client.post(
                "/search/semantic",
                json={"query": q, "limit": 10, "explain": True, "understand": False},
            ).json()
            ids = [r["product_id"] for r in got["results"]]
            vec = searcher.vectors.vector(got["explain"]["semantic_text"])
            exact = recall.exact_top_k(conn, vec, 10, searcher.source)
            found = recall.exact_distances(conn, vec, ids)
            tally.add(kind, [found[i] for i in ids], exact[-1][1], ids, [e[0] for e in exact])
    return Recall(
        all=tally.mean(),
        eps=tally.eps_mean(),
        wands=tally.mean("wands"),
        catalog=tally.mean("catalog"),
        ids=tally.by_ids(),
        queries=tally.queries,
    )


def run(
    settings: Settings,
    url: str | None = None,
    concurrencies: tuple[int, ...] = (1, 8),
    endpoints: tuple[str, ...] = ("semantic", "filtered", "hybrid", "similar", "suggest"),
    recall_queries: int = 200,
    load_queries: int | None = None,
    baseline_queries: int = 30,
    progress: Callable[[str], None] = lambda _m: None,
) -> SearchBench:
    queries = benchmark_queries()[:load_queries]
    db = database_url(settings)
    products, ids = embedded_sample(db, len(queries))
    with connect(db) as conn:
        migrate(conn)
        mode = modes.in_force(conn, settings).mode
    result = SearchBench(
        embeddings=products,
        queries=len(queries),
        mode=mode,
        query_mode=settings.query_mode,
        client="one keep-alive HTTP/1.1 connection per concurrent client (bench.http)",
    )
    # our own server: embedding cache off, so every request pays for its embedding
    built = _against(db, settings, queries) if "filtered" in endpoints else []
    if built:
        progress(f"filters built against {len(built)} queries' own neighbourhoods")
    own = LocalServer(settings, PRODSEARCH_QUERY_CACHE_SIZE="0") if url is None else None
    with own or nullcontext() as server:
        url = url or (server.url if server is not None else "")
        for endpoint in endpoints:
            reqs = _requests(endpoint, queries, ids, built)
            asyncio.run(drive(url, from_list(reqs[:20]), 2))  # warm-up
            for conc in concurrencies:
                row = _measure(url, endpoint, reqs, conc)
                result.endpoints.append(row)
                progress(
                    f"{endpoint} c={conc}: p50 {row.p50_ms} ms, p95 {row.p95_ms} ms, "
                    f"{row.rps} req/s"
                )
        if "filtered" in endpoints:
            result.filter_sets = asyncio.run(_by_filter_set(url, queries, built))
            for f in result.filter_sets:
                progress(
                    f"filtered {f.against or f.filters}: p50 {f.p50_ms} ms, p95 {f.p95_ms} ms, "
                    f"{f.strategy}"
                )
        if recall_queries:
            result.recall = rec = _recall(db, url, settings, recall_queries)
            progress(
                f"recall@10 {rec.all} (tie-aware; WANDS {rec.wands}, catalog {rec.catalog}), "
                f"eps-recall {rec.eps}, {rec.ids} (ids)"
            )
    result.baseline = base = _baseline(db, settings, queries[:baseline_queries], progress)
    sem = [r for r in result.endpoints if r.endpoint == "semantic" and r.concurrency == 1]
    # the baseline is the original semantic path: a ratio only against our semantic endpoint
    base.ratio_p50 = round(base.p50_ms / sem[0].p50_ms, 1) if sem else None
    return result


def embedded_sample(db: str, n: int) -> tuple[int, list[int]]:
    """How many products are embedded, and ``n`` of their ids (spread by a hash)."""
    with connect(db) as conn:
        return store.count_embeddings(conn), store.sample_ids(conn, n)


def _measure(url: str, endpoint: str, reqs: list[Request], conc: int) -> EndpointLoad:
    load = asyncio.run(drive(url, from_list(reqs), conc))
    lat = load.latencies_ms
    return EndpointLoad(
        endpoint=endpoint,
        concurrency=conc,
        requests=len(lat),
        errors=load.errors,
        p50_ms=percentile(lat, 50),
        p95_ms=percentile(lat, 95),
        p99_ms=percentile(lat, 99),
        rps=round(len(lat) / load.wall_s, 1),
    )


def _baseline(
    db: str, settings: Settings, queries: list[str], progress: Callable[[str], None]
) -> Baseline:
    """Original path: sentence-transformers query encoding + exact scan, in-process."""
    model = sentence_transformer()
    lat = []
    with connect(db) as conn:
        source = load_source(conn, settings)
        register_vector(conn)
        for q in queries:
            t0 = time.perf_counter()
            vec = model.encode([q], normalize_embeddings=True)[0]
            recall.exact_top_k(conn, vec, 10, source)
            lat.append((time.perf_counter() - t0) * 1000)
    out = Baseline(
        "sentence-transformers + exact scan",
        len(lat),
        round(statistics.median(lat), 1),
        percentile(lat, 95),
    )
    progress(f"baseline: p50 {out.p50_ms} ms")
    return out
