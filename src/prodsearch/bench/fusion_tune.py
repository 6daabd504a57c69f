"""Fit the hybrid fusion weights on the judged queries and report them on held-out folds.

Each judged query runs once through hybrid search up to the fusion (every leg's candidates:
:meth:`prodsearch.search.service.Searcher.hybrid_legs`); every weight setting of
:data:`GRID` then ranks those candidates with the API's own :func:`fuse`, so the figures
are the ones the API would produce with those settings. The weights are fitted (mean
nDCG@10 over all judged queries, part numbers included) three ways:

* on the whole set — what the defaults are set from;
* two-fold by query (a stable hash of its text): fitted on one half, every query of the
  other half scored with those weights. These *held-out* figures come from weights that
  never saw the query: the estimate for queries nobody has judged yet.
"""

from __future__ import annotations

import itertools
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import psycopg

from prodsearch.bench import relevance as rel
from prodsearch.config import Settings
from prodsearch.embedding import store
from prodsearch.search.fusion import FusionWeights, LexicalEvidence, fuse
from prodsearch.search.results import SearchOptions
from prodsearch.search.rows import Candidate
from prodsearch.search.service import Searcher

FOLDS = 2
GRID: dict[str, tuple[float, ...]] = {
    "lexical": (1.0, 1.5, 2.0, 3.0),
    "coverage_power": (0.0, 1.0, 2.0, 4.0),
    "specific_idf": (0.0, 3.0, 4.5, 6.0),
    "loose": (0.25, 0.5, 1.0),
    "agreement_floor": (0.0, 0.25, 0.5, 1.0),
}


@dataclass
class Case:
    """One judged query's hybrid candidates, ready to be fused with any weights."""

    query: rel.JudgedQuery
    rows: list[Candidate]
    evidence: LexicalEvidence
    vehicle_boost: float
    ideal: float
    attrs: dict[int, dict[str, Any]]
    fold: int

    def score(self, weights: FusionWeights) -> float:
        fused = fuse(self.rows, weights, self.evidence, self.vehicle_boost)
        ids = [r.product_id for r in fused.rows[: rel.K]]
        return rel.score(self.query, "hybrid", ids, self.attrs, self.ideal).ndcg

    def lexical(self) -> rel.QueryScore:
        """The full-text leg alone, scored from the same candidates."""
        ids = rel.lexical_top(self.rows)
        return rel.score(self.query, "lexical", ids, self.attrs, self.ideal)


def fold_of(text: str) -> int:
    return zlib.crc32(text.encode("utf-8")) % FOLDS


async def collect(
    conn: psycopg.Connection[Any],
    aconn: psycopg.AsyncConnection[Any],
    searcher: Searcher,
    queries: Sequence[rel.JudgedQuery],
) -> list[Case]:
    cases = []
    for q in queries:
        legs = await searcher.hybrid_legs(aconn, q.query, SearchOptions(limit=rel.K))
        ids = [r.product_id for r in legs.rows]
        cases.append(
            Case(
                q,
                legs.rows,
                legs.evidence,
                legs.vehicle_boost,
                rel.ideal_dcg(conn, searcher.source, q),
                rel.product_attributes(conn, searcher.source, ids),
                fold_of(q.query),
            )
        )
    return cases


def grid(base: FusionWeights) -> list[FusionWeights]:
    names = list(GRID)
    out = []
    for values in itertools.product(*(GRID[n] for n in names)):
        changes: dict[str, Any] = dict(zip(names, values, strict=True))
        out.append(replace(base, **changes))
    return out


def _distance(a: FusionWeights, b: FusionWeights) -> float:
    return float(sum(abs(getattr(a, f.name) - getattr(b, f.name)) for f in fields(a)))


def fit(
    scores: Sequence[Sequence[float]], weights: Sequence[FusionWeights], base: FusionWeights
) -> FusionWeights:
    """The best of ``weights`` by mean nDCG@10, given ``scores[case][setting]`` for the
    cases to fit on (ties: the nearest to ``base``)."""
    best: tuple[float, float] | None = None
    chosen = base
    for j, setting in enumerate(weights):
        mean = sum(row[j] for row in scores) / max(len(scores), 1)
        key = (round(mean, 9), -_distance(setting, base))
        if best is None or key > best:
            best, chosen = key, setting
    return chosen


@dataclass
class TuneResult:
    configured: FusionWeights
    fitted: FusionWeights  # on every judged query
    per_fold: list[FusionWeights]  # fitted without fold i
    # per query: nDCG@10 with the configured, the fitted and the held-out weights
    scores: list[dict[str, Any]] = field(default_factory=list)


def tune(cases: Sequence[Case], configured: FusionWeights) -> TuneResult:
    settings = grid(configured)
    # every case under every setting, once: the three fits below choose from this table
    table = [[c.score(w) for w in settings] for c in cases]
    fitted = fit(table, settings, configured)
    per_fold = [
        fit([row for c, row in zip(cases, table, strict=True) if c.fold != f], settings, configured)
        for f in range(FOLDS)
    ]
    out = TuneResult(configured, fitted, per_fold)
    for c in cases:
        out.scores.append(
            {
                "query": c.query.query,
                "lang": c.query.lang,
                "kind": c.query.kind,
                "fold": c.fold,
                "configured": c.score(configured),
                "fitted": c.score(fitted),
                "held_out": c.score(per_fold[c.fold]),
            }
        )
    return out


def means(rows: Iterable[dict[str, Any]], key: str, by: str = "lang") -> dict[str, float]:
    groups: dict[str, list[float]] = {}
    for r in rows:
        groups.setdefault(r[by], []).append(r[key])
    return {g: round(sum(v) / len(v), 4) for g, v in sorted(groups.items())}


def judge_and_tune(
    settings: Settings, queries_path: str | None
) -> tuple[TuneResult, list[rel.QueryScore], dict[str, Any]]:
    """The judged queries (the shipped set or ``queries_path``, plus part numbers) through
    semantic and lexical search and through hybrid fitted as above: the fit, the legs'
    per-query scores and what they were measured on."""
    import asyncio

    from pgvector.psycopg import register_vector_async

    from prodsearch.db import connect, database_url, migrate
    from prodsearch.search.setup import build_searcher, query_encoder

    url = database_url(settings)
    with connect(url) as conn:
        migrate(conn)
        encoder = query_encoder(settings)
        searcher = build_searcher(conn, settings, encoder)
        queries = rel.load_queries(queries_path) + rel.part_number_queries(conn, searcher.source)
        semantic = rel.run(conn, url, searcher, None, queries, ["semantic"])

        async def gather() -> list[Case]:
            async with await psycopg.AsyncConnection.connect(url, autocommit=True) as aconn:
                await register_vector_async(aconn)
                await searcher.load_vocabulary(aconn)
                return await collect(conn, aconn, searcher, queries)

        cases = asyncio.run(gather())
        products = store.count_embeddings(conn)
    result = tune(cases, FusionWeights.from_settings(settings))
    legs = semantic + [c.lexical() for c in cases]
    meta = {
        "queries": len(queries),
        "products_embedded": products,
        "mode": searcher.mode.mode,
        "folds": FOLDS,
        "grid": {k: list(v) for k, v in GRID.items()},
    }
    return result, legs, meta
