"""The search service: validate, embed the query (LRU-cached), run SQL, shape results.

One code path for the HTTP API and the ``prodsearch search`` command. Async, on psycopg
async connections; the encoder runs in a worker thread (inference releases the GIL).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import numpy as np
import psycopg
from psycopg import sql

from prodsearch.catalog.source import Source
from prodsearch.config import Settings
from prodsearch.embedding import index as hnsw
from prodsearch.embedding.encoder import Encoder
from prodsearch.search import filters as flt
from prodsearch.search import queries

MAX_QUERY_CHARS = 512
MAX_LIMIT = 100
MAX_OFFSET = 10_000


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


class QueryCache:
    """LRU of query text → embedding; thread-safe."""

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._data: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            vec = self._data.get(key)
            if vec is None:
                self.misses += 1
                return None
            self._data.move_to_end(key)
            self.hits += 1
            return vec

    def put(self, key: str, vec: np.ndarray) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._data[key] = vec
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


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
        self.set_index_type(index_type)
        self.filter_keys = list(flt.allowed_keys(source))
        self.rrf_k = settings.rrf_k
        self.stats = {"embed_s": 0.0, "search_s": 0.0}

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

    async def _run(self, conn: psycopg.AsyncConnection[Any], query: sql.Composable,
                   params: dict[str, Any]) -> tuple[list[dict[str, Any]], float]:  # fmt: skip
        from psycopg.rows import dict_row

        ef = max(self.settings.ef_search, int(params["k"]))
        started = time.perf_counter()
        async with conn.transaction(), conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                "SELECT set_config('hnsw.ef_search', %s, true), "
                "set_config('hnsw.iterative_scan', 'relaxed_order', true)",
                (str(min(ef, 1000)),),
            )
            await cur.execute(query, params)
            rows = await cur.fetchall()
        elapsed = time.perf_counter() - started
        self.stats["search_s"] += elapsed
        return [_shape(r) for r in rows], elapsed

    def _respond(self, rows: list[dict[str, Any]], started: float, embed_s: float,
                 search_s: float, cached: bool | None = None) -> SearchResponse:  # fmt: skip
        timings: dict[str, Any] = {"embed_ms": round(embed_s * 1000, 3),
                                   "search_ms": round(search_s * 1000, 3)}  # fmt: skip
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
        params = {"q": vec, "k": limit + offset, "limit": limit, "offset": offset,
                  "exclude": -1, **fparams}  # fmt: skip
        rows, search_s = await self._run(conn, queries.nearest(self.source, self.order, where),
                                         params)  # fmt: skip
        return self._respond(rows, started, embed_s, search_s, cached)

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
        k = max(limit + offset, 50)
        params = {
            "q": vec, "text": text, "k": k, "rrf_k": rrf, "w_sem": 1.0,
            "w_lex": self.settings.lexical_weight, "w_code": 1.0, "lex_cap": 4 * k + 1000,
            "limit": limit, "offset": offset, **fparams,
        }  # fmt: skip
        rows, search_s = await self._run(conn, queries.hybrid(self.source, self.order, where),
                                         params)  # fmt: skip
        return self._respond(rows, started, embed_s, search_s, cached)

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
        params = {"q": row[0], "k": limit + offset, "limit": limit, "offset": offset,
                  "exclude": product_id, **fparams}  # fmt: skip
        rows, search_s = await self._run(conn, queries.nearest(self.source, self.order, where),
                                         params)  # fmt: skip
        return self._respond(rows, started, 0.0, search_s)

    def _filters(self, filters: dict[str, Any] | None) -> tuple[sql.Composable, dict[str, Any]]:
        try:
            return flt.build(self.source, filters)
        except flt.FilterError as exc:
            raise SearchError(str(exc)) from exc
