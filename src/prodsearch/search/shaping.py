"""Shaping a search's candidates into its response: the page, timings, facets, explain."""

from __future__ import annotations

import math
import time

from prodsearch.search.highlight import query_forms
from prodsearch.search.request import Request
from prodsearch.search.results import (
    FacetCount,
    FacetScope,
    QueryExplain,
    SearchResponse,
    SearchTimings,
    facet_counts,
    shape_row,
)
from prodsearch.search.rows import Candidate, DisplayColumn

FACET_POOL = 100  # candidates that facet counts are taken over
VEHICLE_POOL = 50  # neighbours re-ranked when the query names a vehicle

Facets = tuple[dict[str, list[FacetCount]], FacetScope]


def pool(req: Request) -> int:
    """How many candidates to fetch: the page, more when re-ranking or counting facets."""
    size = req.k
    if req.vehicles:
        size = max(size, VEHICLE_POOL)
    if req.opts.facets:
        size = max(size, FACET_POOL)
    return size


def respond(
    rows: list[Candidate],
    req: Request,
    search_s: float,
    facet_keys: list[DisplayColumn],
    lexical_query: str | None = None,
    lexical_weight: float | None = None,
    facets: Facets | None = None,
) -> SearchResponse:
    """The response to ``req`` from its ranked candidates: the requested page, timings,
    facet counts (over ``facets`` when given — every match —, else the candidates) and,
    when asked, the query's analysis."""
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
            facets = (facet_counts(rows, facet_keys), FacetScope("top_candidates", len(rows)))
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
