"""Planning a search: what every search needs before its SQL.

:meth:`Planner.prepare` validates the request, builds the filter condition, decides the
filter's plan (:mod:`~prodsearch.search.filterplan`: from the planner's estimate, and —
when that does not settle it — from the query's neighbourhood, :meth:`Planner.settle`),
understands the query (vehicles, language, lexical form) and embeds it. The result is a
:class:`~prodsearch.search.request.Request`, which execution
(:mod:`~prodsearch.search.execution`) runs and shaping (:mod:`~prodsearch.search.shaping`)
turns into a response.
"""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Any

import psycopg
from psycopg import sql

from prodsearch.catalog.source import Source
from prodsearch.config import Settings
from prodsearch.db.hnsw import exact_expression, order_expression
from prodsearch.embedding.encoder import Encoder
from prodsearch.jsonvalue import JsonValue
from prodsearch.search import filterplan, queries
from prodsearch.search.cache import LRUCache
from prodsearch.search.constrained import ConstraintSQL
from prodsearch.search.execution import Statements, fetch
from prodsearch.search.filterplan import FilterPlan, Strategy
from prodsearch.search.filters import condition
from prodsearch.search.language import LanguageGuess
from prodsearch.search.queries import SqlParams
from prodsearch.search.request import Request
from prodsearch.search.results import SearchOptions, normalise_query
from prodsearch.search.understanding import QueryUnderstanding, QueryVectors

ESTIMATE_TTL_S = 300.0  # a filter's estimated matches are asked again after this long


def _seq_scan(node: JsonValue) -> bool:
    """Whether an EXPLAIN plan node reads its table with a sequential scan anywhere."""
    if not isinstance(node, dict):
        return False
    if node.get("Node Type") == "Seq Scan":
        return True
    children = node.get("Plans")
    return isinstance(children, list) and any(_seq_scan(child) for child in children)


class Planner:
    """Prepares requests for one source, index type and encoder."""

    def __init__(
        self,
        settings: Settings,
        source: Source,
        encoder: Encoder,
        understanding: QueryUnderstanding,
        vectors: QueryVectors,
        language: LanguageGuess,
        statements: Statements,
        index_type: str | None,
    ) -> None:
        self.settings = settings
        self.source = source
        self.understanding = understanding
        self.vectors = vectors
        self.language = language
        self.statements = statements
        self.exact_distance = exact_expression(encoder.dim)
        self.dim = encoder.dim
        self.estimates: LRUCache[tuple[tuple[float, bool], float]] = LRUCache(1024)
        self.set_index_type(index_type)

    def set_index_type(self, index_type: str | None) -> None:
        """Queries must use the expression the index was built on (vector or halfvec)."""
        self.index_type = index_type or self.settings.index_type
        self.index_distance = order_expression(self.index_type, self.dim)

    async def prepare(
        self,
        conn: psycopg.AsyncConnection[Any],
        query: str | None,
        opts: SearchOptions | None,
        extra: ConstraintSQL | None = None,
    ) -> Request:
        """Validate, plan the filter, understand and embed the query. ``extra``:
        understood constraints, as more filter conditions or as a mask."""
        started = time.perf_counter()
        opts = opts or SearchOptions()
        opts.check()
        text = normalise_query(query) if query is not None else ""
        where, fparams = condition(self.source, opts.filters)  # FilterError: a 422
        if extra is not None and extra.where is not None:
            where = queries.all_of([where, extra.where])
            fparams = {**fparams, **extra.params}
        await self.understanding.refresh(conn)
        order, strategy, plan = await self._strategy(conn, where, fparams, opts.exact)
        vehicles = self.understanding.vehicles.find(text) if text else []
        req = Request(
            started, text, opts.limit, opts.offset, opts, where, fparams, order, strategy, vehicles
        )
        req.plan = plan
        if extra is not None and extra.mask is not None:
            req.mask, req.mask_names, req.mask_params = extra.mask, extra.names, extra.params
        if text:
            req.language = self.language.guess(text)
            analysis = await self.understanding.understand(conn, text, self.vectors)
            req.lexical, req.vector = analysis.lexical, analysis.embedded.vector
            req.embed_s, req.cached = analysis.embedded.seconds, analysis.embedded.cached
            req.semantic_text = req.lexical.semantic_text(text)
        return req

    async def _strategy(
        self,
        conn: psycopg.AsyncConnection[Any],
        where: sql.Composable,
        fparams: SqlParams,
        exact: bool,
    ) -> tuple[sql.Composable, Strategy, FilterPlan | None]:
        """Distance expression for a (filtered) query: the exact one when asked for; for a
        filter, the plan its estimated matches decide — "pending" when only the query's
        neighbourhood can (:meth:`settle`)."""
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
        self, conn: psycopg.AsyncConnection[Any], where: sql.Composable, fparams: SqlParams
    ) -> tuple[float, bool]:
        """The planner's estimate of the products a filter matches, and whether it finds
        them with a sequential scan (no index serves the filter); cached a few minutes."""
        key = where.as_string() + repr(sorted(fparams.items()))
        cached = self.estimates.get(key)
        if cached is not None and time.monotonic() - cached[1] < ESTIMATE_TTL_S:
            return cached[0]
        found = await fetch(conn, queries.match_estimate(self.source, where), fparams)
        top: JsonValue = found[0][0][0]["Plan"] if found else {}  # one row: the plan list
        rows = top.get("Plan Rows") if isinstance(top, dict) else None
        estimate = (float(rows) if isinstance(rows, int | float) else float("inf"), _seq_scan(top))
        self.estimates.put(key, (estimate, time.monotonic()))
        return estimate

    async def settle(
        self, conn: psycopg.AsyncConnection[Any], req: Request, vector: Any, k: int, exclude: int
    ) -> None:
        """Settle a pending filter plan: how many of the probes nearest to ``vector`` pass
        the filter predicts the index walk's depth; the cheaper plan is taken."""
        assert req.plan is not None
        probes = self.understanding.probes
        ids = probes.neighbours(vector, filterplan.NEIGHBOURHOOD, exclude)
        if not ids:  # no probes (an empty catalog): the estimate's side of the rule
            req.plan = replace(req.plan, strategy="index")
            return
        statement = self.statements.get(
            "neighbourhood", req, lambda: queries.neighbourhood_passes(self.source, req.where)
        )
        rows = await fetch(conn, statement, {**req.fparams, "probe_ids": ids})
        passed = {int(r[0]) for r in rows}
        ef = req.opts.ef_search or self.settings.ef_search
        catalog = max(self.understanding.stats.docs, len(probes))
        req.plan = filterplan.by_neighbourhood(
            req.plan, k, ef, [i in passed for i in ids], catalog, len(probes)
        )
        if req.plan.strategy == "exact":
            req.go_exact(self.exact_distance)
