"""The search service: validate, embed the query (LRU-cached), run SQL, shape results.

One code path for the HTTP API and the ``prodsearch search`` command. Async, on psycopg
async connections; the encoder runs in a worker thread (inference releases the GIL).
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections import OrderedDict
from contextlib import nullcontext
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Generic, TypeVar

import numpy as np
import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from prodsearch.catalog.source import Source
from prodsearch.config import Settings
from prodsearch.embedding import index as hnsw
from prodsearch.embedding.encoder import Encoder
from prodsearch.search import filters as flt
from prodsearch.search import queries

MAX_QUERY_CHARS = 512
ESTIMATE_TTL_S = 300.0
MAX_LIMIT = 100
MAX_OFFSET = 10_000


V = TypeVar("V")


class SearchError(ValueError):
    """Bad search input (HTTP 422) or a missing product (``not_found`` → HTTP 404)."""

    def __init__(self, message: str, not_found: bool = False) -> None:
        super().__init__(message)
        self.not_found = not_found


@dataclass
class SearchResponse:
    results: list[dict[str, Any]]
    execution_time_ms: float
    timings: dict[str, Any] = field(default_factory=dict)

    @property
    def count(self) -> int:
        return len(self.results)

    def as_dict(self) -> dict[str, Any]:
        return {
            "results": self.results,
            "count": self.count,
            "execution_time_ms": self.execution_time_ms,
            "timings": self.timings,
        }


class LRUCache(Generic[V]):
    """A thread-safe LRU map (query text → embedding, filter → row estimate)."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._data: OrderedDict[str, V] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> V | None:
        with self._lock:
            value = self._data.get(key)
            if value is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: str, value: V) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


QueryCache = LRUCache[np.ndarray]


def normalise_query(query: Any) -> str:
    if not isinstance(query, str):
        raise SearchError("query must be a string")
    text = " ".join(query.split())
    if not text:
        raise SearchError("query is empty")
    if len(text) > MAX_QUERY_CHARS:
        raise SearchError(f"query is longer than {MAX_QUERY_CHARS} characters ({len(text)})")
    return text


def check_page(limit: Any, offset: Any) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise SearchError(f"limit must be an integer from 1 to {MAX_LIMIT}")
    if isinstance(offset, bool) or not isinstance(offset, int) or not 0 <= offset <= MAX_OFFSET:
        raise SearchError(f"offset must be an integer from 0 to {MAX_OFFSET}")


def _shape(row: dict[str, Any]) -> dict[str, Any]:
    out = dict(row)
    if isinstance(out.get("price"), Decimal):
        out["price"] = float(out["price"])
    out["score"] = round(float(out["score"]), 6)
    return out


class Searcher:
    def __init__(self, settings: Settings, encoder: Encoder, source: Source,
                 index_type: str | None) -> None:  # fmt: skip
        self.settings = settings
        self.encoder = encoder
        self.source = source
        self.cache = QueryCache(settings.query_cache_size)
        self.exact = hnsw.exact_expression(encoder.dim)
        self.estimates: LRUCache[tuple[float, float]] = LRUCache(1024)
        self.set_index_type(index_type)
        self.filter_keys = list(flt.allowed_keys(source))
        self.rrf_k = settings.rrf_k
        self.stats = {"embed_s": 0.0, "search_s": 0.0}
        self._configured: weakref.WeakSet[psycopg.AsyncConnection[Any]] = weakref.WeakSet()

    def set_index_type(self, index_type: str | None) -> None:
        """Queries must use the expression the index was built on (vector or halfvec)."""
        self.index_type = index_type or self.settings.index_type
        self.order = hnsw.order_expression(self.index_type, self.encoder.dim)

    async def embed(self, text: str) -> tuple[np.ndarray, float, bool]:
        key = text.lower()
        vec = self.cache.get(key)
        if vec is not None:
            return vec, 0.0, True
        started = time.perf_counter()
        vec = (await asyncio.to_thread(self.encoder.encode, [text]))[0]
        elapsed = time.perf_counter() - started
        self.cache.put(key, vec)
        self.stats["embed_s"] += elapsed
        return vec, elapsed, False

    async def _strategy(self, conn: psycopg.AsyncConnection[Any], where: sql.Composable,
                        fparams: dict[str, Any]) -> tuple[sql.Composable, str]:  # fmt: skip
        """Distance expression for a (filtered) query: the HNSW one, or the exact one when
        the planner expects few enough matching products that scoring them all is cheaper
        than walking the graph past non-matching neighbours (and exact, too)."""
        if not fparams or self.settings.exact_filter_rows <= 0:
            return self.order, "index"
        key = where.as_string() + repr(sorted(fparams.items()))
        cached = self.estimates.get(key)
        if cached is not None and time.monotonic() - cached[1] < ESTIMATE_TTL_S:
            rows = cached[0]
        else:
            cur = await conn.execute(queries.match_estimate(self.source, where), fparams,
                                     prepare=False)  # fmt: skip
            found = await cur.fetchone()
            if not conn.autocommit:
                await conn.commit()
            rows = float(found[0][0]["Plan"]["Plan Rows"]) if found else float("inf")
            self.estimates.put(key, (rows, time.monotonic()))
        if rows <= self.settings.exact_filter_rows:
            return self.exact, "exact"
        return self.order, "index"

    async def _configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Session settings, once per connection: the default ``hnsw.ef_search``, iterative
        index scans (a filtered query keeps scanning until it has ``k`` rows) and serial
        execution."""
        await conn.execute(
            "SELECT set_config('hnsw.ef_search', %s, false), "
            "set_config('hnsw.iterative_scan', 'relaxed_order', false), "
            # no parallel workers: on a few cores they cost more than they save
            "set_config('max_parallel_workers_per_gather', '0', false)",
            (str(self.settings.ef_search),),
        )
        if not conn.autocommit:
            await conn.commit()
        self._configured.add(conn)

    async def _run(
        self, conn: psycopg.AsyncConnection[Any], query: sql.Composable, params: dict[str, Any],
        filtered: bool,
    ) -> tuple[list[dict[str, Any]], float]:  # fmt: skip
        """One round trip on an autocommit connection; a transaction with a local
        ``hnsw.ef_search`` only when a deep page needs more candidates than the default.

        Unfiltered queries are prepared (planned once per connection); filtered ones are
        planned for their values every time, since a filter's selectivity decides the plan.
        """
        if conn not in self._configured:
            await self._configure(conn)
        ef = min(max(self.settings.ef_search, int(params["k"])), 1000)
        deep = ef != self.settings.ef_search
        started = time.perf_counter()
        async with (
            conn.transaction() if deep else nullcontext(),
            conn.cursor(row_factory=dict_row) as cur,
        ):
            if deep:
                await cur.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(ef),))
            await cur.execute(query, params, prepare=False if filtered else None)
            rows = await cur.fetchall()
        if not deep and not conn.autocommit:
            await conn.commit()
        elapsed = time.perf_counter() - started
        self.stats["search_s"] += elapsed
        return [_shape(r) for r in rows], elapsed

    def _respond(self, rows: list[dict[str, Any]], started: float, embed_s: float,
                 search_s: float, strategy: str, cached: bool | None = None
                 ) -> SearchResponse:  # fmt: skip
        timings: dict[str, Any] = {"embed_ms": round(embed_s * 1000, 3),
                                   "search_ms": round(search_s * 1000, 3),
                                   "strategy": strategy}  # fmt: skip
        if cached is not None:
            timings["cached_embedding"] = cached
        return SearchResponse(rows, round((time.perf_counter() - started) * 1000, 3), timings)

    async def semantic(
        self, conn: psycopg.AsyncConnection[Any], query: str, limit: int = 20, offset: int = 0,
        filters: dict[str, Any] | None = None,
    ) -> SearchResponse:  # fmt: skip
        started = time.perf_counter()
        text = normalise_query(query)
        check_page(limit, offset)
        where, fparams = self._filters(filters)
        vec, embed_s, cached = await self.embed(text)
        order, strategy = await self._strategy(conn, where, fparams)
        params = {"q": vec, "k": limit + offset, "limit": limit, "offset": offset,
                  "exclude": -1, **fparams}  # fmt: skip
        query = queries.nearest(self.source, order, where, exact=strategy == "exact")
        rows, search_s = await self._run(conn, query, params, bool(fparams))
        return self._respond(rows, started, embed_s, search_s, strategy, cached)

    async def hybrid(
        self, conn: psycopg.AsyncConnection[Any], query: str, limit: int = 20, offset: int = 0,
        filters: dict[str, Any] | None = None, rrf_k: int | None = None,
    ) -> SearchResponse:  # fmt: skip
        started = time.perf_counter()
        text = normalise_query(query)
        check_page(limit, offset)
        rrf = self.rrf_k if rrf_k is None else rrf_k
        if isinstance(rrf, bool) or not isinstance(rrf, int) or not 1 <= rrf <= 1000:
            raise SearchError("rrf_k must be an integer from 1 to 1000")
        where, fparams = self._filters(filters)
        vec, embed_s, cached = await self.embed(text)
        order, strategy = await self._strategy(conn, where, fparams)
        k = max(limit + offset, 50)
        params = {
            "q": vec, "text": text, "k": k, "rrf_k": rrf, "w_sem": 1.0,
            "w_lex": self.settings.lexical_weight, "w_code": 1.0, "lex_cap": 4 * k + 1000,
            "limit": limit, "offset": offset, **fparams,
        }  # fmt: skip
        query = queries.hybrid(self.source, order, where, exact=strategy == "exact")
        rows, search_s = await self._run(conn, query, params, bool(fparams))
        return self._respond(rows, started, embed_s, search_s, strategy, cached)

    async def similar(
        self, conn: psycopg.AsyncConnection[Any], product_id: int, limit: int = 20,
        offset: int = 0, filters: dict[str, Any] | None = None,
    ) -> SearchResponse:  # fmt: skip
        started = time.perf_counter()
        check_page(limit, offset)
        where, fparams = self._filters(filters)
        cur = await conn.execute(queries.stored_vector(), (product_id,))
        row = await cur.fetchone()
        await conn.commit()
        if row is None:
            cur = await conn.execute(queries.product_exists(self.source), (product_id,))
            found = await cur.fetchone()
            await conn.commit()
            if found is None:
                raise SearchError(f"product {product_id} does not exist", not_found=True)
            state = "is deleted" if not found[0] else "is not embedded yet (run prodsearch embed)"
            raise SearchError(f"product {product_id} {state}", not_found=True)
        order, strategy = await self._strategy(conn, where, fparams)
        params = {"q": row[0], "k": limit + offset, "limit": limit, "offset": offset,
                  "exclude": product_id, **fparams}  # fmt: skip
        query = queries.nearest(self.source, order, where, exact=strategy == "exact")
        rows, search_s = await self._run(conn, query, params, bool(fparams))
        return self._respond(rows, started, 0.0, search_s, strategy)

    def _filters(self, filters: dict[str, Any] | None) -> tuple[sql.Composable, dict[str, Any]]:
        try:
            return flt.build(self.source, filters)
        except flt.FilterError as exc:
            raise SearchError(str(exc)) from exc
