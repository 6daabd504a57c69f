"""The search service: semantic, hybrid and similar-product search, one code path for the
HTTP API and the ``prodsearch search`` command.

A search is planned (:mod:`~prodsearch.search.planning`: validated, its filter planned, the
query understood and embedded), executed (:mod:`~prodsearch.search.execution`: its SQL run
and checked) and shaped (:mod:`~prodsearch.search.shaping`: the page and its extras); this
module composes the three for each kind of search, and fuses hybrid's legs
(:mod:`~prodsearch.search.fusion`). Async, on psycopg async connections in autocommit; an
int8 query is embedded on the event loop's thread, other modes in a worker thread
(inference releases the GIL).
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import psycopg

from prodsearch.catalog.source import Source
from prodsearch.config import RRF_K_MAX, RRF_K_MIN, Settings
from prodsearch.embedding import modes
from prodsearch.embedding.encoder import Encoder
from prodsearch.embedding.querymap import QueryMap
from prodsearch.errors import SearchError
from prodsearch.search import queries
from prodsearch.search.bm25 import DESCRIPTION_TF, K1, B, head_weighted, slot_idfs
from prodsearch.search.constrained import (
    LEAD,
    LEAD_SHARE,
    ConstraintSQL,
    constrained,
    plan_constraints,
)
from prodsearch.search.execution import Build, Executor, Statements, requested_k
from prodsearch.search.filters import allowed_keys
from prodsearch.search.fusion import FusionWeights, LexicalEvidence, fuse
from prodsearch.search.language import LanguageGuess
from prodsearch.search.planning import Planner
from prodsearch.search.queries import SqlParams
from prodsearch.search.request import Request
from prodsearch.search.results import SearchOptions, SearchResponse
from prodsearch.search.rows import Candidate, DisplayColumn, Found, is_display
from prodsearch.search.shaping import pool, respond
from prodsearch.search.synonyms import Synonyms
from prodsearch.search.synonyms import load as load_synonyms
from prodsearch.search.understanding import ConstraintColumns, QueryUnderstanding, QueryVectors

__all__ = ["SearchError", "SearchOptions", "SearchResponse", "Searcher"]

LEX_CAP = 1000  # full-text hits ranked per query, at least (fewer cost nDCG: BENCHMARKS.md)


@dataclass
class HybridLegs:
    """Hybrid search before fusion: the request, every leg's candidates (unranked), the
    SQL's seconds, the full-text leg's evidence and the vehicle boost that applies."""

    req: Request
    rows: list[Candidate]
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
        keys = allowed_keys(source)
        self.filter_keys = list(keys)
        self.facet_keys: list[DisplayColumn] = [
            key for key, (_col, kind) in keys.items() if kind == "any" and is_display(key)
        ]
        self.fusion = FusionWeights.from_settings(settings)
        self.statements = Statements()
        self.planner = Planner(
            settings,
            source,
            encoder,
            self.understanding,
            self.vectors,
            language or LanguageGuess(),  # the query's language: result titles
            self.statements,
            index_type,
        )
        self.executor = Executor(
            source, settings.ef_search, self.understanding, self.statements, self.facet_keys
        )

    @property
    def query_map(self) -> QueryMap | None:
        """The Polish→English map applied to query vectors (None: none stored)."""
        return self.vectors.query_map

    @property
    def index_type(self) -> str:
        return self.planner.index_type

    def set_index_type(self, index_type: str | None) -> None:
        """Queries must use the expression the index was built on (vector or halfvec);
        the composed statements hold the old one, so they start afresh."""
        self.planner.set_index_type(index_type)
        self.statements.clear()

    async def load_vocabulary(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """The indexed terms (typo correction) and the catalog's vehicles; reloaded every
        few minutes as the catalog changes."""
        await self.understanding.load(conn)

    async def _prepare(
        self,
        conn: psycopg.AsyncConnection[Any],
        query: str | None,
        opts: SearchOptions | None,
        extra: ConstraintSQL | None = None,
    ) -> Request:
        await self.executor.configure(conn)
        return await self.planner.prepare(conn, query, opts, extra)

    async def _search(
        self,
        conn: psycopg.AsyncConnection[Any],
        kind: str,
        req: Request,
        params: SqlParams,
        build: Build,
        vector: Any,
        exclude: int = -1,
    ) -> Found:
        """A pending filter plan settled by the query's neighbourhood, then the ``kind``
        statement run and checked (:meth:`Executor.search`)."""
        if req.plan is not None and req.plan.strategy == "pending" and vector is not None:
            await self.planner.settle(conn, req, vector, requested_k(params), exclude)
        return await self.executor.search(
            conn, kind, req, params, build, vector, self.planner.exact_distance, exclude
        )

    def _vehicle_params(self, req: Request, weight: float) -> SqlParams:
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

        async def run(
            text: str, o: SearchOptions, extra: ConstraintSQL
        ) -> tuple[SearchResponse, np.ndarray | None]:
            req = await self._prepare(conn, text, o, extra)
            resp = await self._nearest(conn, req, req.vector, -1, self.settings.vehicle_boost)
            return resp, req.vector

        return await constrained(plan, run, self._meant)

    async def _nearest(
        self,
        conn: psycopg.AsyncConnection[Any],
        req: Request,
        vector: Any,
        exclude: int,
        vehicle_boost: float,
    ) -> SearchResponse:
        """The nearest neighbours of ``vector`` (semantic, filtered and similar search)."""
        params: SqlParams = {
            "q": vector,
            "k": pool(req),
            "exclude": exclude,
            **req.fparams,
            **req.mask_params,
            **self._vehicle_params(req, vehicle_boost),
        }
        found = await self._search(
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
            facets = await self.executor.facets_of_matches(conn, req)
        return respond(found.rows, req, found.seconds, self.facet_keys, facets=facets)

    def _meant(self, vector: np.ndarray) -> set[str]:
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

        async def run(
            text: str, o: SearchOptions, extra: ConstraintSQL
        ) -> tuple[SearchResponse, np.ndarray | None]:
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
        return await self.hybrid_candidates(conn, req)

    def rank_hybrid(self, legs: HybridLegs, weights: FusionWeights) -> SearchResponse:
        """The legs fused with ``weights`` (:func:`fuse`), as a response."""
        fused = fuse(legs.rows, weights, legs.evidence, legs.vehicle_boost)
        req = legs.req
        assert req.lexical is not None
        size = max(pool(req), self._hybrid_k(req))
        return respond(
            fused.rows[:size],
            req,
            legs.search_s,
            self.facet_keys,
            req.lexical.strict,
            fused.lexical_weight,
        )

    def _hybrid_k(self, req: Request) -> int:
        return max(req.k, 50)

    async def hybrid_candidates(
        self, conn: psycopg.AsyncConnection[Any], req: Request
    ) -> HybridLegs:
        """Every leg's candidates for a prepared request (unranked), the SQL's seconds, and
        what the analysis says about the full-text leg: what :func:`fuse` ranks."""
        lexq = req.lexical
        assert lexq is not None
        stats = self.understanding.stats
        idfs = slot_idfs(lexq.slots, stats)
        bm25_weights = head_weighted(idfs, req.language)
        k = self._hybrid_k(req)
        params: SqlParams = {
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
        found = await self._search(
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
        boost = self.settings.vehicle_boost_hybrid if req.vehicles else 0.0
        return HybridLegs(req, found.rows, found.seconds, evidence, boost)

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
