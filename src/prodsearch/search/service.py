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
from collections.abc import Callable
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
from prodsearch.embedding.querymap import QueryMap
from prodsearch.search import queries
from prodsearch.search.filters import FilterError, allowed_keys
from prodsearch.search.filters import build as filters_build
from prodsearch.search.lexquery import LexicalQuery, unknown_words
from prodsearch.search.lexquery import analyze as analyze_lexical
from prodsearch.search.synonyms import Synonyms
from prodsearch.search.synonyms import load as load_synonyms
from prodsearch.search.vehicles import VehicleIndex

MAX_QUERY_CHARS = 512
ESTIMATE_TTL_S = 300.0
MAX_LIMIT = 100
MAX_OFFSET = 10_000
VOCABULARY_TTL_S = 300.0
MIN_SIMILARITY = 0.45  # trigram similarity for a typo correction
LEX_CAP = 1000  # full-text hits ranked per query, at least (fewer cost nDCG: BENCHMARKS.md)


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
    facets: dict[str, list[dict[str, Any]]] | None = None
    explain: dict[str, Any] | None = None

    @property
    def count(self) -> int:
        return len(self.results)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "results": self.results,
            "count": self.count,
            "execution_time_ms": self.execution_time_ms,
            "timings": self.timings,
        }
        if self.facets is not None:
            out["facets"] = self.facets
        if self.explain is not None:
            out["explain"] = self.explain
        return out


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


PARTS = (
    "distance",
    "semantic_rank",
    "lexical_rank",
    "lexical_score",
    "code_match",
    "vehicle_match",
)
FACET_POOL = 100  # candidates that facet counts are taken over
VEHICLE_POOL = 50  # neighbours re-ranked when the query names a vehicle
MIN_EF, MAX_EF = 10, 1000


@dataclass
class SearchOptions:
    """Per-request knobs beside the query, page and filters (all validated)."""

    ef_search: int | None = None  # hnsw.ef_search for this request
    exact: bool = False  # brute force: score every (matching) product exactly
    explain: bool = False  # each result's score parts, and the query analysis
    facets: bool = False  # category / brand counts over the candidate set

    def check(self) -> None:
        ef = self.ef_search
        if ef is not None and (
            isinstance(ef, bool) or not isinstance(ef, int) or not MIN_EF <= ef <= MAX_EF
        ):
            raise SearchError(f"ef_search must be an integer from {MIN_EF} to {MAX_EF}")
        for name in ("exact", "explain", "facets"):
            if not isinstance(getattr(self, name), bool):
                raise SearchError(f"{name} must be true or false")


def _shape(row: dict[str, Any], explain: bool) -> dict[str, Any]:
    out = {k: v for k, v in row.items() if k not in PARTS}
    if isinstance(out.get("price"), Decimal):
        out["price"] = float(out["price"])
    out["score"] = round(float(out["score"]), 6)
    if explain:
        parts = {k: row[k] for k in PARTS if k in row}
        if parts.get("distance") is not None:
            parts["distance"] = round(float(parts["distance"]), 6)
        if parts.get("lexical_score") is not None:
            parts["lexical_score"] = round(float(parts["lexical_score"]), 6)
        out["explain"] = parts
    return out


def facet_counts(rows: list[dict[str, Any]], keys: list[str]) -> dict[str, list[dict[str, Any]]]:
    """Value counts of the given fields over ``rows``, most frequent first."""
    out: dict[str, list[dict[str, Any]]] = {}
    for key in keys:
        counts: dict[str, int] = {}
        for row in rows:
            value = row.get(key)
            if value is not None:
                counts[str(value)] = counts.get(str(value), 0) + 1
        ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
        out[key] = [{"value": v, "count": n} for v, n in ranked]
    return out


@dataclass
class _Request:
    """What every search needs before its SQL: validated inputs and the query vector."""

    started: float
    text: str
    limit: int
    offset: int
    opts: SearchOptions
    where: sql.Composable
    fparams: dict[str, Any]
    order: sql.Composable
    strategy: str
    vehicles: list[str]
    embed_s: float = 0.0
    cached: bool | None = None
    vector: Any = None
    lexical: LexicalQuery | None = None
    semantic_text: str = ""

    @property
    def k(self) -> int:
        return self.limit + self.offset


class Searcher:
    def __init__(
        self,
        settings: Settings,
        encoder: Encoder,
        source: Source,
        index_type: str | None,
        query_map: QueryMap | None = None,
        synonyms: Synonyms | None = None,
    ) -> None:
        self.settings = settings
        self.encoder = encoder
        self.source = source
        self.query_map = query_map
        self.synonyms = synonyms if synonyms is not None else load_synonyms(settings.synonyms)
        self.cache = QueryCache(settings.query_cache_size)
        # an int8 query embeds in 1-2 ms on one thread: cheaper on the event loop's own
        # thread than handed to a worker thread (which must be woken first)
        self.encode_inline = encoder.mode == "int8"
        self.exact_distance = hnsw.exact_expression(encoder.dim)
        self.estimates: LRUCache[tuple[float, float]] = LRUCache(1024)
        # unknown word -> its closest indexed term, "" when it has none
        self.corrections: LRUCache[str] = LRUCache(4096)
        self.set_index_type(index_type)
        keys = allowed_keys(source)
        self.filter_keys = list(keys)
        self.facet_keys = [
            k for k, (_c, kind) in keys.items() if kind == "any" and k in queries.DISPLAY
        ]
        self.vehicle_column = settings.vehicle_column
        self.vehicles = VehicleIndex([])
        self.terms: frozenset[str] = frozenset()
        self._terms_loaded = 0.0
        self.rrf_k = settings.rrf_k
        self.stats = {"embed_s": 0.0, "search_s": 0.0}
        self._configured: weakref.WeakSet[psycopg.AsyncConnection[Any]] = weakref.WeakSet()

    def set_index_type(self, index_type: str | None) -> None:
        """Queries must use the expression the index was built on (vector or halfvec)."""
        self.index_type = index_type or self.settings.index_type
        self.index_distance = hnsw.order_expression(self.index_type, self.encoder.dim)
        # composed statements by shape (composing one costs ~0.2 ms of Python per request);
        # they hold the distance expression, so a new index type starts them afresh
        self.statements: LRUCache[bytes] = LRUCache(512)

    async def load_vocabulary(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """The indexed terms (typo correction) and the catalog's vehicles; reloaded by
        :meth:`_refresh_vocabulary` every few minutes, as the catalog changes."""
        cur = await conn.execute(queries.known_terms())
        self.terms = frozenset(r[0] for r in await cur.fetchall())
        names = queries.vehicle_names(self.source, self.vehicle_column)
        if names is not None:
            cur = await conn.execute(names)
            self.vehicles = VehicleIndex(r[0] for r in await cur.fetchall())
        if not conn.autocommit:
            await conn.commit()
        self._terms_loaded = time.monotonic()

    async def _refresh_vocabulary(self, conn: psycopg.AsyncConnection[Any]) -> None:
        if time.monotonic() - self._terms_loaded > VOCABULARY_TTL_S:
            await self.load_vocabulary(conn)

    async def embed(self, text: str) -> tuple[np.ndarray, float, bool]:
        """The query's vector (through the Polish→English map when one is loaded)."""
        key = text.lower()
        vec = self.cache.get(key)
        if vec is not None:
            return vec, 0.0, True
        started = time.perf_counter()
        if self.encode_inline:
            vec = self.encoder.encode([text])[0]
        else:
            vec = (await asyncio.to_thread(self.encoder.encode, [text]))[0]
        if self.query_map is not None:
            vec = self.query_map.apply(vec)
        elapsed = time.perf_counter() - started
        self.cache.put(key, vec)
        self.stats["embed_s"] += elapsed
        return vec, elapsed, False

    async def _strategy(
        self,
        conn: psycopg.AsyncConnection[Any],
        where: sql.Composable,
        fparams: dict[str, Any],
        exact: bool,
    ) -> tuple[sql.Composable, str]:
        """Distance expression for a (filtered) query: the HNSW one, or the exact one when
        asked for, or when the planner expects few enough matching products that scoring
        them all is cheaper than walking the graph past non-matching neighbours."""
        if exact:
            return self.exact_distance, "exact"
        if not fparams or self.settings.exact_filter_rows <= 0:
            return self.index_distance, "index"
        key = where.as_string() + repr(sorted(fparams.items()))
        cached = self.estimates.get(key)
        if cached is not None and time.monotonic() - cached[1] < ESTIMATE_TTL_S:
            rows = cached[0]
        else:
            cur = await conn.execute(
                queries.match_estimate(self.source, where), fparams, prepare=False
            )
            found = await cur.fetchone()
            if not conn.autocommit:
                await conn.commit()
            rows = float(found[0][0]["Plan"]["Plan Rows"]) if found else float("inf")
            self.estimates.put(key, (rows, time.monotonic()))
        if rows <= self.settings.exact_filter_rows:
            return self.exact_distance, "exact"
        return self.index_distance, "index"

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

    async def _prepare(
        self,
        conn: psycopg.AsyncConnection[Any],
        query: str | None,
        limit: int,
        offset: int,
        filters: dict[str, Any] | None,
        opts: SearchOptions | None,
    ) -> _Request:
        """The preamble every search shares: validate, plan the filter, embed the query."""
        started = time.perf_counter()
        opts = opts or SearchOptions()
        opts.check()
        text = normalise_query(query) if query is not None else ""
        check_page(limit, offset)
        try:
            where, fparams = filters_build(self.source, filters)
        except FilterError as exc:
            raise SearchError(str(exc)) from exc
        if conn not in self._configured:
            await self._configure(conn)
        await self._refresh_vocabulary(conn)
        order, strategy = await self._strategy(conn, where, fparams, opts.exact)
        vehicles = self.vehicles.find(text) if text else []
        req = _Request(
            started, text, limit, offset, opts, where, fparams, order, strategy, vehicles
        )
        if text:
            req.lexical, req.vector, req.embed_s, req.cached = await self.understand(conn, text)
            req.semantic_text = req.lexical.semantic_text(text)
        return req

    async def _run(
        self,
        conn: psycopg.AsyncConnection[Any],
        query: bytes,
        params: dict[str, Any],
        req: _Request,
    ) -> tuple[list[dict[str, Any]], float]:
        """One round trip on an autocommit connection; a transaction with a local
        ``hnsw.ef_search`` only when the request asks for another one or a deep page needs
        more candidates than the default.

        Unfiltered queries are prepared (planned once per connection); filtered ones are
        planned for their values every time, since a filter's selectivity decides the plan.
        """
        ef = req.opts.ef_search or self.settings.ef_search
        ef = min(max(ef, int(params["k"])), MAX_EF)
        local = ef != self.settings.ef_search
        started = time.perf_counter()
        async with (
            conn.transaction() if local else nullcontext(),
            conn.cursor(row_factory=dict_row) as cur,
        ):
            if local:
                await cur.execute("SELECT set_config('hnsw.ef_search', %s, true)", (str(ef),))
            await cur.execute(query, params, prepare=False if req.fparams else None)
            rows = await cur.fetchall()
        if not local and not conn.autocommit:
            await conn.commit()
        elapsed = time.perf_counter() - started
        self.stats["search_s"] += elapsed
        return rows, elapsed

    def _respond(
        self,
        rows: list[dict[str, Any]],
        req: _Request,
        search_s: float,
        analysis: dict[str, Any] | None = None,
    ) -> SearchResponse:
        page = [_shape(r, req.opts.explain) for r in rows[req.offset : req.offset + req.limit]]
        timings: dict[str, Any] = {
            "embed_ms": round(req.embed_s * 1000, 3),
            "search_ms": round(search_s * 1000, 3),
            "strategy": req.strategy,
        }
        if req.cached is not None:
            timings["cached_embedding"] = req.cached
        resp = SearchResponse(page, round((time.perf_counter() - req.started) * 1000, 3), timings)
        if req.opts.facets:
            resp.facets = facet_counts(rows, self.facet_keys)
        if req.opts.explain:
            resp.explain = {
                "vehicles": req.vehicles,
                "candidates": len(rows),
                "semantic_text": req.semantic_text,
                **(analysis or {}),
            }
            if req.lexical is not None:
                resp.explain.update(
                    corrected=req.lexical.corrected,
                    dropped=req.lexical.dropped,
                    synonyms=req.lexical.expanded,
                )
        return resp

    def _pool(self, req: _Request) -> int:
        """How many candidates to fetch: the page, more when re-ranking or counting facets."""
        pool = req.k
        if req.vehicles:
            pool = max(pool, VEHICLE_POOL)
        if req.opts.facets:
            pool = max(pool, FACET_POOL)
        return pool

    def _statement(self, kind: str, req: _Request, build: Callable[[], sql.Composable]) -> bytes:
        """The SQL for ``kind`` and this request's shape (strategy, filter clause), composed
        once and kept as bytes; the values are parameters, never part of the text."""
        key = f"{kind}|{req.strategy}|{req.where.as_string() if req.fparams else ''}"
        text = self.statements.get(key)
        if text is None:
            text = build().as_string().encode()
            self.statements.put(key, text)
        return text

    def _vehicle_params(self, req: _Request, weight: float) -> dict[str, Any]:
        return {"vehicles": req.vehicles, "w_vehicle": weight if req.vehicles else 0.0}

    async def semantic(
        self,
        conn: psycopg.AsyncConnection[Any],
        query: str,
        limit: int = 20,
        offset: int = 0,
        filters: dict[str, Any] | None = None,
        opts: SearchOptions | None = None,
    ) -> SearchResponse:
        req = await self._prepare(conn, query, limit, offset, filters, opts)
        return await self._nearest(conn, req, req.vector, -1, self.settings.vehicle_boost)

    async def _nearest(
        self,
        conn: psycopg.AsyncConnection[Any],
        req: _Request,
        vector: Any,
        exclude: int,
        vehicle_boost: float,
    ) -> SearchResponse:
        """The nearest neighbours of ``vector`` (semantic, filtered and similar search)."""
        params = {
            "q": vector,
            "k": self._pool(req),
            "exclude": exclude,
            **req.fparams,
            **self._vehicle_params(req, vehicle_boost),
        }
        statement = self._statement(
            "nearest",
            req,
            lambda: queries.nearest(
                self.source, req.order, req.where, req.strategy == "exact", self.vehicle_column
            ),
        )
        rows, search_s = await self._run(conn, statement, params, req)
        return self._respond(rows, req, search_s)

    def _unknown(self, text: str) -> list[str]:
        """Words of ``text`` the index does not know (typo candidates); none without a
        vocabulary."""
        if not self.terms:
            return []
        return unknown_words(text, self.synonyms, self.terms.__contains__)

    def _analyze(self, text: str, unknown: list[str]) -> LexicalQuery:
        """The full-text query for ``text``: synonyms expanded, the ``unknown`` words
        replaced by the corrections found so far (or dropped)."""
        known: Callable[[str], bool] | None = self.terms.__contains__ if self.terms else None
        corrections = {w: term for w in unknown if (term := self.corrections.get(w))}
        return analyze_lexical(text, self.synonyms, known, corrections)

    async def _look_up_corrections(
        self, conn: psycopg.AsyncConnection[Any], words: list[str]
    ) -> None:
        cur = await conn.execute(
            queries.closest_terms(), {"words": words, "min_sim": MIN_SIMILARITY}
        )
        for word, term in await cur.fetchall():
            self.corrections.put(word, term or "")
        if not conn.autocommit:
            await conn.commit()

    async def understand(
        self, conn: psycopg.AsyncConnection[Any], text: str
    ) -> tuple[LexicalQuery, np.ndarray, float, bool]:
        """The query's analysis and its vector. Words the catalog never uses are looked up
        (trigram similarity, one SQL statement, cached) *while* the encoder embeds the text
        as if none of them were a typo; only when a correction turns up is the corrected
        text embedded again, so the lookup costs no latency in the common case."""
        unknown = self._unknown(text)
        missing = [w for w in unknown if self.corrections.get(w) is None]
        guess = self._analyze(text, unknown)
        if not missing:
            vec, embed_s, cached = await self.embed(guess.semantic_text(text))
            return guess, vec, embed_s, cached
        # the lookup first: its statement is on its way before an inline encode holds the
        # event loop
        _, (vec, embed_s, cached) = await asyncio.gather(
            self._look_up_corrections(conn, missing), self.embed(guess.semantic_text(text))
        )
        lexq = self._analyze(text, unknown)
        if lexq.semantic_text(text) != guess.semantic_text(text):
            vec, more_s, cached = await self.embed(lexq.semantic_text(text))
            embed_s += more_s
        return lexq, vec, embed_s, cached

    async def hybrid(
        self,
        conn: psycopg.AsyncConnection[Any],
        query: str,
        limit: int = 20,
        offset: int = 0,
        filters: dict[str, Any] | None = None,
        rrf_k: int | None = None,
        opts: SearchOptions | None = None,
    ) -> SearchResponse:
        rrf = self.rrf_k if rrf_k is None else rrf_k
        if isinstance(rrf, bool) or not isinstance(rrf, int) or not 1 <= rrf <= 1000:
            raise SearchError("rrf_k must be an integer from 1 to 1000")
        req = await self._prepare(conn, query, limit, offset, filters, opts)
        lexq = req.lexical
        assert lexq is not None
        k = max(req.k, 50)
        params = {
            "q": req.vector,
            "text": req.text,
            "strict": lexq.strict,
            "loose": lexq.loose,
            "k": k,
            "rrf_k": rrf,
            "w_sem": 1.0,
            "w_lex": self.settings.lexical_weight,
            "w_code": 1.0,
            "lex_cap": LEX_CAP + 4 * k,
            "pool": max(self._pool(req), k),
            **req.fparams,
            **self._vehicle_params(req, self.settings.vehicle_boost_hybrid),
        }
        sql_ = self._statement(
            "hybrid",
            req,
            lambda: queries.hybrid(
                self.source,
                req.order,
                req.where,
                req.strategy == "exact",
                self.vehicle_column,
                filtered=bool(req.fparams),
            ),
        )
        rows, search_s = await self._run(conn, sql_, params, req)
        return self._respond(rows, req, search_s, {"lexical_query": lexq.strict})

    async def similar(
        self,
        conn: psycopg.AsyncConnection[Any],
        product_id: int,
        limit: int = 20,
        offset: int = 0,
        filters: dict[str, Any] | None = None,
        opts: SearchOptions | None = None,
    ) -> SearchResponse:
        req = await self._prepare(conn, None, limit, offset, filters, opts)
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
        return await self._nearest(conn, req, row[0], product_id, 0.0)
