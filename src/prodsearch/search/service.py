"""The search service: validate, understand and embed the query, run SQL, shape results.

One code path for the HTTP API and the ``prodsearch search`` command. Async, on psycopg
async connections; an int8 query is embedded on the event loop's thread, other modes in a
worker thread (inference releases the GIL).
"""

from __future__ import annotations

import math
import time
import weakref
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from prodsearch.catalog.source import Source
from prodsearch.config import RRF_K_MAX, RRF_K_MIN, Settings
from prodsearch.db.hnsw import exact_expression, order_expression
from prodsearch.embedding import modes
from prodsearch.embedding.encoder import Encoder
from prodsearch.embedding.querymap import QueryMap
from prodsearch.errors import SearchError
from prodsearch.search import filterplan, queries
from prodsearch.search.bm25 import DESCRIPTION_TF, K1, B, head_weighted, slot_idfs
from prodsearch.search.cache import LRUCache
from prodsearch.search.constrained import (
    LEAD,
    LEAD_SHARE,
    ConstraintSQL,
    constrained,
    plan_constraints,
)
from prodsearch.search.filterplan import FilterPlan
from prodsearch.search.filters import allowed_keys, condition
from prodsearch.search.fusion import FusionWeights, LexicalEvidence, fuse
from prodsearch.search.highlight import query_forms
from prodsearch.search.language import LanguageGuess
from prodsearch.search.lexquery import LexicalQuery
from prodsearch.search.results import (
    MAX_EF,
    FacetCount,
    FacetScope,
    QueryExplain,
    SearchOptions,
    SearchResponse,
    SearchTimings,
    facet_counts,
    normalise_query,
    shape_row,
)
from prodsearch.search.synonyms import Synonyms
from prodsearch.search.synonyms import load as load_synonyms
from prodsearch.search.understanding import ConstraintColumns, QueryUnderstanding, QueryVectors

__all__ = ["SearchError", "SearchOptions", "SearchResponse", "Searcher"]

ESTIMATE_TTL_S = 300.0
LEX_CAP = 1000  # full-text hits ranked per query, at least (fewer cost nDCG: BENCHMARKS.md)
FACET_POOL = 100  # candidates that facet counts are taken over
VEHICLE_POOL = 50  # neighbours re-ranked when the query names a vehicle


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
    widened: bool = False  # the index missed (search.probes): searched again, wider
    language: str | None = None  # the query's language, when it says (search.language)
    plan: FilterPlan | None = None  # a filtered query's plan (search.filterplan)
    mask: sql.Composable = field(default_factory=lambda: queries.NO_MASK)  # constraints met
    mask_names: tuple[str, ...] = ()  # the constraint of each bit of the mask
    mask_params: dict[str, Any] = field(default_factory=dict)

    @property
    def k(self) -> int:
        return self.limit + self.offset


async def _fetch(
    conn: psycopg.AsyncConnection[Any], statement: sql.Composed | bytes, params: dict[str, Any]
) -> list[tuple[Any, ...]]:
    """Every row of one statement planned for these values (unprepared: a filter's
    values decide its plan)."""
    cur = await conn.execute(statement, params, prepare=False)
    return await cur.fetchall()


def _seq_scan(node: dict[str, Any]) -> bool:
    """Whether an EXPLAIN plan reads its table with a sequential scan anywhere."""
    if node.get("Node Type") == "Seq Scan":
        return True
    return any(_seq_scan(child) for child in node.get("Plans", []))


@dataclass
class HybridLegs:
    """Hybrid search before fusion: the request, every leg's candidates (unranked), the
    SQL's seconds, the full-text leg's evidence and the vehicle boost that applies."""

    req: _Request
    rows: list[dict[str, Any]]
    search_s: float
    evidence: LexicalEvidence
    vehicle_boost: float


class Searcher:
    def __init__(
        self,
        settings: Settings,
        encoder: Encoder,
        source: Source,
        index_type: str | None,
        query_map: QueryMap | None = None,
        synonyms: Synonyms | None = None,
        language: LanguageGuess | None = None,
        mode: modes.ModeInForce | None = None,
    ) -> None:
        self.settings = settings
        # the documents' encoder mode (what the query map was fitted on), for /health
        self.mode = mode or modes.without_record(settings)
        self.language = language or LanguageGuess()  # the query's language: result titles
        self.encoder = encoder
        self.source = source
        self.vectors = QueryVectors(encoder, query_map, settings.query_cache_size)
        self.vehicle_column = settings.vehicle_column
        self.understanding = QueryUnderstanding(
            source,
            settings.vehicle_column,
            synonyms if synonyms is not None else load_synonyms(settings.synonyms),
            ConstraintColumns.from_settings(settings),
        )
        self.exact_distance = exact_expression(encoder.dim)
        self.estimates: LRUCache[tuple[tuple[float, bool], float]] = LRUCache(1024)
        self.set_index_type(index_type)
        keys = allowed_keys(source)
        self.filter_keys = list(keys)
        self.facet_keys = [
            k for k, (_c, kind) in keys.items() if kind == "any" and k in queries.DISPLAY
        ]
        self.fusion = FusionWeights.from_settings(settings)
        self.search_seconds = 0.0
        self._configured: weakref.WeakSet[psycopg.AsyncConnection[Any]] = weakref.WeakSet()

    @property
    def query_map(self) -> QueryMap | None:
        """The Polish→English map applied to query vectors (None: none stored)."""
        return self.vectors.query_map

    def set_index_type(self, index_type: str | None) -> None:
        """Queries must use the expression the index was built on (vector or halfvec)."""
        self.index_type = index_type or self.settings.index_type
        self.index_distance = order_expression(self.index_type, self.encoder.dim)
        # composed statements by shape (composing one costs ~0.2 ms of Python per request);
        # they hold the distance expression, so a new index type starts them afresh
        self.statements: LRUCache[bytes] = LRUCache(512)

    async def load_vocabulary(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """The indexed terms (typo correction) and the catalog's vehicles; reloaded every
        few minutes as the catalog changes."""
        await self.understanding.load(conn)

    async def _strategy(
        self,
        conn: psycopg.AsyncConnection[Any],
        where: sql.Composable,
        fparams: dict[str, Any],
        exact: bool,
    ) -> tuple[sql.Composable, str, FilterPlan | None]:
        """Distance expression for a (filtered) query: the exact one when asked for; for a
        filter, the plan its estimated matches decide (:mod:`~prodsearch.search.filterplan`)
        — "pending" when only the query's neighbourhood can (:meth:`_plan_neighbourhood`)."""
        if exact:
            return self.exact_distance, "exact", None
        if not fparams:
            return self.index_distance, "index", None
        matches, seq_scan = await self._matches(conn, where, fparams)
        decided = filterplan.by_selectivity(matches, self.settings.exact_filter_rows)
        plan = FilterPlan(decided or "pending", matches, seq_scan)
        if decided == "exact":
            return self.exact_distance, "exact", plan
        return self.index_distance, "index", plan

    async def _matches(
        self, conn: psycopg.AsyncConnection[Any], where: sql.Composable, fparams: dict[str, Any]
    ) -> tuple[float, bool]:
        """The planner's estimate of the products a filter matches, and whether it finds
        them with a sequential scan (no index serves the filter); cached a few minutes."""
        key = where.as_string() + repr(sorted(fparams.items()))
        cached = self.estimates.get(key)
        if cached is not None and time.monotonic() - cached[1] < ESTIMATE_TTL_S:
            return cached[0]
        found = await _fetch(conn, queries.match_estimate(self.source, where), fparams)
        top = found[0][0][0]["Plan"] if found else {}  # one row: the JSON plan list
        estimate = (float(top.get("Plan Rows", float("inf"))), _seq_scan(top))
        self.estimates.put(key, (estimate, time.monotonic()))
        return estimate

    async def _plan_neighbourhood(
        self,
        conn: psycopg.AsyncConnection[Any],
        req: _Request,
        vector: Any,
        k: int,
        exclude: int,
    ) -> None:
        """Settle a pending filter plan: how many of the probes nearest to ``vector`` pass
        the filter predicts the index walk's depth; the cheaper plan is taken."""
        assert req.plan is not None
        probes = self.understanding.probes
        ids = probes.neighbours(vector, filterplan.NEIGHBOURHOOD, exclude)
        if not ids:  # no probes (an empty catalog): the estimate's side of the rule
            req.plan = replace(req.plan, strategy="index")
            return
        statement = self._statement(
            "neighbourhood", req, lambda: queries.neighbourhood_passes(self.source, req.where)
        )
        rows = await _fetch(conn, statement, {**req.fparams, "probe_ids": ids})
        passed = {int(r[0]) for r in rows}
        ef = req.opts.ef_search or self.settings.ef_search
        catalog = max(self.understanding.stats.docs, len(probes))
        req.plan = filterplan.by_neighbourhood(
            req.plan, k, ef, [i in passed for i in ids], catalog, len(probes)
        )
        if req.plan.strategy == "exact":
            req.order, req.strategy = self.exact_distance, "exact"

    async def _configure(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Session settings, once per connection: the default ``hnsw.ef_search``, iterative
        index scans (a filtered query keeps scanning until it has ``k`` rows) and serial
        execution. Searches read on autocommit connections: a read leaves no transaction
        open, and the only transactions are those scoping a local setting."""
        if not conn.autocommit:
            raise ValueError("the search service needs an autocommit connection")
        await conn.execute(queries.SESSION_SETTINGS, (str(self.settings.ef_search),))
        self._configured.add(conn)

    async def _prepare(
        self,
        conn: psycopg.AsyncConnection[Any],
        query: str | None,
        opts: SearchOptions | None,
        extra: ConstraintSQL | None = None,
    ) -> _Request:
        """The preamble every search shares: validate, plan the filter, embed the query.
        ``extra``: understood constraints, as more filter conditions or as a mask."""
        started = time.perf_counter()
        opts = opts or SearchOptions()
        opts.check()
        text = normalise_query(query) if query is not None else ""
        where, fparams = condition(self.source, opts.filters)  # FilterError: a 422
        if extra is not None and extra.where is not None:
            where = queries.all_of([where, extra.where])
            fparams = {**fparams, **extra.params}
        if conn not in self._configured:
            await self._configure(conn)
        await self.understanding.refresh(conn)
        order, strategy, plan = await self._strategy(conn, where, fparams, opts.exact)
        vehicles = self.understanding.vehicles.find(text) if text else []
        req = _Request(
            started, text, opts.limit, opts.offset, opts, where, fparams, order, strategy, vehicles
        )
        req.plan = plan
        if extra is not None and extra.mask is not None:
            req.mask, req.mask_names, req.mask_params = extra.mask, extra.names, extra.params
        if text:
            req.language = self.language.guess(text)
            req.lexical, req.vector, req.embed_s, req.cached = await self.understanding.understand(
                conn, text, self.vectors
            )
            req.semantic_text = req.lexical.semantic_text(text)
        return req

    async def _run(
        self,
        conn: psycopg.AsyncConnection[Any],
        query: bytes,
        params: dict[str, Any],
        req: _Request,
        ef: int | None = None,
    ) -> tuple[list[dict[str, Any]], float]:
        """One round trip on an autocommit connection; a transaction with a local
        ``hnsw.ef_search`` only when the request asks for another one (or ``ef``), or a
        deep page needs more candidates than the default.

        Unfiltered queries are prepared (planned once per connection); filtered ones are
        planned for their values every time, since a filter's selectivity decides the plan.
        """
        ef = ef or req.opts.ef_search or self.settings.ef_search
        ef = min(max(ef, int(params["k"])), MAX_EF)
        local = ef != self.settings.ef_search
        started = time.perf_counter()
        async with (
            conn.transaction() if local else nullcontext(),
            conn.cursor(row_factory=dict_row) as cur,
        ):
            if local:
                await cur.execute(queries.LOCAL_EF_SEARCH, (str(ef),))
            await cur.execute(query, params, prepare=False if req.fparams else None)
            rows = await cur.fetchall()
        elapsed = time.perf_counter() - started
        self.search_seconds += elapsed
        return rows, elapsed

    def _respond(
        self,
        rows: list[dict[str, Any]],
        req: _Request,
        search_s: float,
        lexical_query: str | None = None,
        lexical_weight: float | None = None,
        facets: tuple[dict[str, list[FacetCount]], FacetScope] | None = None,
    ) -> SearchResponse:
        language, plan = req.language, req.plan
        wanted = query_forms(req.opts.highlight_query or req.text)
        page = [
            shape_row(r, req.opts.explain, language, req.mask_names, wanted)
            for r in rows[req.offset : req.offset + req.limit]
        ]
        timings = SearchTimings(
            embed_ms=round(req.embed_s * 1000, 3),
            search_ms=round(search_s * 1000, 3),
            strategy=req.strategy,
            cached_embedding=req.cached,
            widened=req.widened,
            filter_matches=round(plan.matches) if plan and math.isfinite(plan.matches) else None,
            neighbourhood_pass=plan.neighbourhood_pass if plan else None,
        )
        resp = SearchResponse(page, round((time.perf_counter() - req.started) * 1000, 3), timings)
        resp.query_language = language
        if req.opts.facets:
            if facets is None:
                facets = (
                    facet_counts(rows, self.facet_keys),
                    FacetScope("top_candidates", len(rows)),
                )
            resp.facets, resp.facets_over = facets
        if req.opts.explain:
            lex = req.lexical
            resp.explain = QueryExplain(
                vehicles=req.vehicles,
                candidates=len(rows),
                semantic_text=req.semantic_text,
                lexical_query=lexical_query,
                corrected=lex.corrected if lex is not None else None,
                dropped=lex.dropped if lex is not None else None,
                synonyms=lex.expanded if lex is not None else None,
                lexical_weight=round(lexical_weight, 4) if lexical_weight is not None else None,
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
        if req.mask_names:
            key += "|" + req.mask.as_string()
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
        opts: SearchOptions | None = None,
    ) -> SearchResponse:
        plan = plan_constraints(self.understanding, self.source, query, opts)
        if plan is None:
            req = await self._prepare(conn, query, opts)
            return await self._nearest(conn, req, req.vector, -1, self.settings.vehicle_boost)

        async def run(text: str, o: SearchOptions, extra: ConstraintSQL) -> tuple[Any, Any]:
            req = await self._prepare(conn, text, o, extra)
            resp = await self._nearest(conn, req, req.vector, -1, self.settings.vehicle_boost)
            return resp, req.vector

        return await constrained(plan, run, self._meant)

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
            **req.mask_params,
            **self._vehicle_params(req, vehicle_boost),
        }
        rows, search_s = await self._search(
            conn,
            "nearest",
            req,
            params,
            lambda r: queries.nearest(
                self.source,
                r.order,
                r.where,
                r.strategy == "exact",
                self.vehicle_column,
                mask=r.mask,
            ),
            vector,
            exclude,
        )
        facets = None
        if req.opts.facets and req.fparams and req.strategy == "exact":
            facets = await self._facets_of_matches(conn, req)
        return self._respond(rows, req, search_s, facets=facets)

    def _missed(
        self, req: _Request, rows: list[dict[str, Any]], vector: Any, exclude: int = -1
    ) -> bool:
        """Whether an unfiltered index search provably missed the nearest products: a probe
        product is closer than its best result (:mod:`prodsearch.search.probes`)."""
        if req.fparams or req.strategy != "index" or vector is None:
            return False
        distances = [float(r["distance"]) for r in rows if r.get("distance") is not None]
        best = min(distances, default=None)
        return self.understanding.probes.missed(vector, best, exclude)

    async def _search(
        self,
        conn: psycopg.AsyncConnection[Any],
        kind: str,
        req: _Request,
        params: dict[str, Any],
        build: Callable[[_Request], sql.Composable],
        vector: Any,
        exclude: int = -1,
    ) -> tuple[list[dict[str, Any]], float]:
        """Run the ``kind`` statement ``build`` composes for ``req`` (a pending filter plan
        settled first); when the index provably missed (:meth:`_missed`), again with the
        widest candidate list, and exactly should that miss too; exactly at once when a
        filtered walk stopped short (:meth:`_stopped_short`). ``req`` records what ran.
        Rows and the SQL's seconds."""
        if req.plan is not None and req.plan.strategy == "pending" and vector is not None:
            await self._plan_neighbourhood(conn, req, vector, int(params["k"]), exclude)
        statement = self._statement(kind, req, lambda: build(req))
        rows, search_s = await self._run(conn, statement, params, req)
        if await self._stopped_short(conn, req, rows, int(params["k"]), exclude):
            req.widened = True  # the walk hit its scan limit: score every match instead
        elif not self._missed(req, rows, vector, exclude):
            return rows, search_s
        else:
            req.widened = True
            rows, more = await self._run(conn, statement, params, req, ef=MAX_EF)
            search_s += more
            if not self._missed(req, rows, vector, exclude):
                return rows, search_s
        req.order, req.strategy = self.exact_distance, "exact"
        statement = self._statement(kind, req, lambda: build(req))
        rows, more = await self._run(conn, statement, params, req)
        return rows, search_s + more

    async def _stopped_short(
        self,
        conn: psycopg.AsyncConnection[Any],
        req: _Request,
        rows: list[dict[str, Any]],
        k: int,
        exclude: int,
    ) -> bool:
        """Whether a filtered index walk ended at pgvector's scan limit: fewer than ``k``
        neighbours came back although more embedded products pass the filter (counted,
        up to ``k``, only when the page came back short)."""
        if req.plan is None or req.strategy != "index":
            return False
        found = sum(1 for r in rows if r.get("semantic_rank") is not None)
        if found >= k:
            return False
        statement = self._statement(
            "matches", req, lambda: queries.count_matches(self.source, req.where)
        )
        counted = await _fetch(conn, statement, {**req.fparams, "k": k, "exclude": exclude})
        return bool(counted) and int(counted[0][0]) > found

    async def _facets_of_matches(
        self, conn: psycopg.AsyncConnection[Any], req: _Request
    ) -> tuple[dict[str, list[FacetCount]], FacetScope]:
        """Facet counts over every product a filter matches: for a filter the planner
        expects few products for (the exact path), one pass over the covering indexes."""
        statement = self._statement(
            "facets", req, lambda: queries.facet_totals(self.source, req.where, self.facet_keys)
        )
        rows = await _fetch(conn, statement, req.fparams)
        counts: dict[str, list[FacetCount]] = {key: [] for key in self.facet_keys}
        total = 0
        for key, value, count in rows:
            if key is None:
                total = int(count)
            elif value is not None:
                counts[key].append(FacetCount(str(value), int(count)))
        for values in counts.values():
            values.sort(key=lambda f: (-f.count, f.value))
        return counts, FacetScope("all_matches", total)

    def _meant(self, vector: Any) -> set[str]:
        """The product types a query vector is nearest to in meaning (the probes)."""
        return self.understanding.probes.lead_categories(vector, LEAD, LEAD_SHARE)

    async def hybrid(
        self,
        conn: psycopg.AsyncConnection[Any],
        query: str,
        opts: SearchOptions | None = None,
        rrf_k: int | None = None,
    ) -> SearchResponse:
        rrf = self.fusion.rrf_k if rrf_k is None else rrf_k
        if isinstance(rrf, bool) or not isinstance(rrf, int) or not RRF_K_MIN <= rrf <= RRF_K_MAX:
            raise SearchError(f"rrf_k must be an integer from {RRF_K_MIN} to {RRF_K_MAX}")
        weights = replace(self.fusion, rrf_k=rrf)
        plan = plan_constraints(self.understanding, self.source, query, opts)
        if plan is None:
            legs = await self.hybrid_legs(conn, query, opts)
            return self.rank_hybrid(legs, weights)

        async def run(text: str, o: SearchOptions, extra: ConstraintSQL) -> tuple[Any, Any]:
            legs = await self.hybrid_legs(conn, text, o, extra)
            return self.rank_hybrid(legs, weights), legs.req.vector

        return await constrained(plan, run, self._meant)

    async def hybrid_legs(
        self,
        conn: psycopg.AsyncConnection[Any],
        query: str,
        opts: SearchOptions | None = None,
        extra: ConstraintSQL | None = None,
    ) -> HybridLegs:
        """Hybrid search up to the fusion: every leg's candidates, unranked."""
        req = await self._prepare(conn, query, opts, extra)
        rows, search_s, evidence = await self.hybrid_candidates(conn, req)
        boost = self.settings.vehicle_boost_hybrid if req.vehicles else 0.0
        return HybridLegs(req, rows, search_s, evidence, boost)

    def rank_hybrid(self, legs: HybridLegs, weights: FusionWeights) -> SearchResponse:
        """The legs fused with ``weights`` (:func:`fuse`), as a response."""
        ranked, w_lex = fuse(legs.rows, weights, legs.evidence, legs.vehicle_boost)
        req = legs.req
        assert req.lexical is not None
        pool = max(self._pool(req), self._hybrid_k(req))
        return self._respond(ranked[:pool], req, legs.search_s, req.lexical.strict, w_lex)

    def _hybrid_k(self, req: _Request) -> int:
        return max(req.k, 50)

    async def hybrid_candidates(
        self, conn: psycopg.AsyncConnection[Any], req: _Request
    ) -> tuple[list[dict[str, Any]], float, LexicalEvidence]:
        """Every leg's candidates for a prepared request (unranked), the SQL's seconds, and
        what the analysis says about the full-text leg: what :func:`fuse` ranks."""
        lexq = req.lexical
        assert lexq is not None
        stats = self.understanding.stats
        idfs = slot_idfs(lexq.slots, stats)
        bm25_weights = head_weighted(idfs, req.language)
        k = self._hybrid_k(req)
        params = {
            "q": req.vector,
            "text": req.text,
            "strict": lexq.strict,
            "loose": lexq.loose,
            "slot_names": lexq.slot_queries("A"),
            "slot_descriptions": lexq.slot_queries("B"),
            "idf": bm25_weights,
            "desc_tf": DESCRIPTION_TF,
            "k1": K1,
            "b": B,
            "mean_length": stats.mean_length,
            "k": k,
            "lex_cap": LEX_CAP + 4 * k,
            **req.fparams,
            **req.mask_params,
            **self._vehicle_params(req, self.settings.vehicle_boost_hybrid),
        }
        slots = len(lexq.slots)
        rows, search_s = await self._search(
            conn,
            f"hybrid{slots}",
            req,
            params,
            lambda r: queries.hybrid(
                self.source,
                r.order,
                r.where,
                r.strategy == "exact",
                self.vehicle_column,
                filtered=bool(r.fparams),
                slots=slots,
                mask=r.mask,
            ),
            req.vector,
        )
        evidence = LexicalEvidence(
            words=len(lexq.words),
            dropped=len(lexq.dropped),
            corrected=len(lexq.corrected),
            best_idf=max(idfs, default=0.0),
        )
        return rows, search_s, evidence

    async def similar(
        self,
        conn: psycopg.AsyncConnection[Any],
        product_id: int,
        opts: SearchOptions | None = None,
    ) -> SearchResponse:
        req = await self._prepare(conn, None, opts)
        cur = await conn.execute(queries.stored_vector(), (product_id,))
        row = await cur.fetchone()
        if row is None:
            cur = await conn.execute(queries.product_exists(self.source), (product_id,))
            found = await cur.fetchone()
            if found is None:
                raise SearchError(f"product {product_id} does not exist", not_found=True)
            state = "is deleted" if not found[0] else "is not embedded yet (run prodsearch embed)"
            raise SearchError(f"product {product_id} {state}", not_found=True)
        return await self._nearest(conn, req, row[0], product_id, 0.0)
