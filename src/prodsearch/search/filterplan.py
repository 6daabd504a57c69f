"""How a filtered query is searched: from the filter's selectivity *and* how the query's
own neighbourhood passes it.

Two plans return the best matches that satisfy a filter:

- **index** — the HNSW graph walked in distance order with an iterative scan
  (``hnsw.iterative_scan``) until ``k`` visited products pass the filter. Its cost is the
  number of products visited, which depends on the filter *near the query*: a filter
  that passes half the catalog but almost none of the query's neighbours ("under 50 PLN"
  for "clutch kit", whose neighbours are nearly all dearer) makes it walk deep, and a
  category far from the query is reached only after everything nearer.
- **exact** — every product the filter matches scored against the query. Its cost is the
  number of matching products wherever they lie, plus a read of the whole catalog when
  no index finds them.

The planner's estimate gives the second; the probes (:mod:`prodsearch.search.probes`,
an even sample of the catalog kept in memory) give the first: the sample products
nearest to the query, in order, and one primary-key lookup for which of them pass. Each
probe stands for ``catalog / probes`` products, so the rank at which enough of them have
passed is the walk's depth (:func:`predicted_depth`). The cheaper plan wins. Selectivity
alone (the rule before) sent "out of stock", which the planner expects few products for,
to a 100 ms exact scan although the query's neighbours pass it freely (a walk of ~80).

Should the walk stop at pgvector's scan limit before it has ``k`` products while more
match, the search is rerun exactly (the service does that): a plan changes speed, never
which products come back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

# how a search's SQL finds neighbours: the HNSW index, or every (matching) product scored
Strategy = Literal["index", "exact"]
# a filter plan's choice; "pending" until the query's neighbourhood is asked
PlanStrategy = Literal["index", "exact", "pending"]

NEIGHBOURHOOD = 64  # the probes nearest to the query whose passing predicts the walk
# at most this many matching products: score them all, without asking the neighbourhood
ALWAYS_EXACT_ROWS = 1000
# one product visited by the iterative index walk (graph hops, random page reads, the join
# that filters) costs this many matching products scored by the exact plan through a
# covering index (docs/BENCHMARKS.md, "A filter plan from selectivity and the query's
# neighbourhood")
INDEX_VISIT_COST = 3.5
# an exact plan whose matches no index finds reads the whole catalog first: per product
# read, this many matching rows' worth (out of stock, with no index on in_stock: ~100 ms
# at 278,697 products)
SEQ_SCAN_COST = 0.12
MAX_SCAN_TUPLES = 20_000  # pgvector's hnsw.max_scan_tuples default: where a walk stops


@dataclass(frozen=True, slots=True)
class FilterPlan:
    strategy: PlanStrategy
    matches: float  # the planner's estimate of products the filter matches
    seq_scan: bool = False  # the planner finds them with a sequential scan (no index)
    neighbourhood_pass: float | None = None  # share of the nearest probes that pass


def by_selectivity(matches: float, exact_max_rows: int) -> Strategy | None:
    """The plan the estimate alone decides: exact for a handful of matches, the index
    beyond what an exact scan is ever allowed; None: ask the neighbourhood."""
    if exact_max_rows <= 0 or matches > exact_max_rows:
        return "index"
    if matches <= ALWAYS_EXACT_ROWS:
        return "exact"
    return None


def predicted_depth(
    k: int, ef_search: int, passing: Sequence[bool], catalog: int, probes: int, matches: float
) -> float:
    """Products an iterative index walk visits to collect ``k`` that pass the filter.

    ``passing``: whether each probe nearest to the query passes, nearest first. Each
    of the ``probes`` stands for ``catalog / probes`` products around it (the probes are an even
    sample), so the walk has reached about ``rank × scale`` products when it passes the
    probe at ``rank``, and has found about ``passed × scale`` matches by then. Past the
    last probe asked, matches come at the filter's catalog-wide rate."""
    scale = max(1.0, catalog / max(1, probes))
    found = 0.0
    for rank, passes in enumerate(passing, start=1):
        found += scale if passes else 0.0
        if found >= k:
            return max(float(ef_search), (rank - 0.5) * scale)
    rate = max(matches, 1.0) / max(catalog, 1)
    return max(float(ef_search), len(passing) * scale + (k - found) / rate)


def by_neighbourhood(
    plan: FilterPlan, k: int, ef_search: int, passing: Sequence[bool], catalog: int, probes: int
) -> FilterPlan:
    """The cheaper plan for a query whose nearest probes pass the filter as ``passing``
    (nearest first), in a catalog of ``catalog`` products sampled by ``probes`` probes."""
    depth = predicted_depth(k, ef_search, passing, catalog, probes, plan.matches)
    index_cost = min(depth, MAX_SCAN_TUPLES) * INDEX_VISIT_COST
    exact_cost = plan.matches + (catalog * SEQ_SCAN_COST if plan.seq_scan else 0.0)
    if depth > MAX_SCAN_TUPLES:  # the walk would stop short, then run exactly anyway
        index_cost += exact_cost
    rate = sum(passing) / len(passing) if passing else 0.0
    return FilterPlan(
        "exact" if exact_cost <= index_cost else "index",
        plan.matches,
        plan.seq_scan,
        round(rate, 4),
    )
