"""How a filtered query is searched: from the filter's selectivity *and* how the query's
own neighbourhood passes it.

Two plans return the best matches that satisfy a filter:

- **index** — the HNSW graph walked in distance order with an iterative scan
  (``hnsw.iterative_scan``) until ``k`` visited products pass the filter. Its cost is the
  number of products visited: about ``k / pass rate`` *near the query*. A filter that
  passes half the catalog but almost none of the query's neighbours ("in stock under
  200 PLN" for "clutch kit", whose neighbours are nearly all dearer) makes it walk deep.
- **exact** — every product the filter matches scored against the query. Its cost is the
  number of matching products, wherever they lie.

The planner's row estimate gives the second; the probes (:mod:`prodsearch.search.probes`,
an even sample of the catalog kept in memory) give the first: the sample products nearest
to the query are its neighbourhood, and one primary-key lookup says how many of them the
filter passes. The cheaper plan wins. Selectivity alone (the rule before) sent "out of
stock", which the planner expects few products for, to a 100 ms exact scan although the
query's neighbours pass it freely (an index walk of ~80 products).

Should the walk stop at pgvector's scan limit before it has ``k`` products while more
match, the search is rerun exactly (the service does that): a plan changes speed, never
which products come back.
"""

from __future__ import annotations

from dataclasses import dataclass

NEIGHBOURHOOD = 64  # the probes nearest to the query whose pass rate predicts the walk
# at most this many matching products: score them all, without asking the neighbourhood
ALWAYS_EXACT_ROWS = 1000
# one product visited by the iterative index scan costs this many products scored by the
# exact plan (graph hops, random page reads, the filter itself). Measured at 278,697
# products (docs/BENCHMARKS.md, #22): ~12 µs per visited tuple against ~8 µs per row.
INDEX_VISIT_COST = 1.5
MAX_SCAN_TUPLES = 20_000  # pgvector's hnsw.max_scan_tuples default: where a walk stops


@dataclass(frozen=True, slots=True)
class FilterPlan:
    strategy: str  # "index" or "exact"
    matches: float  # the planner's estimate of products the filter matches
    neighbourhood_pass: float | None = None  # share of the nearest probes that pass
    depth: float | None = None  # predicted products the index walk visits


def pass_rate(passed: int, probed: int) -> float:
    """The neighbourhood's pass rate, smoothed (none passing is not a rate of zero: the
    walk may still find matches between the probes)."""
    return (passed + 0.5) / (probed + 1)


def predicted_depth(k: int, ef_search: int, rate: float) -> float:
    """Products an iterative index walk visits to collect ``k`` that pass: at least the
    candidate list, then about one passing product per 1/rate visited."""
    return max(float(ef_search), k / max(rate, 1e-9))


def by_selectivity(matches: float, exact_max_rows: int) -> str | None:
    """The plan the estimate alone decides: exact for a handful of matches, the index
    beyond what an exact scan is ever allowed; None: ask the neighbourhood."""
    if exact_max_rows <= 0 or matches > exact_max_rows:
        return "index"
    if matches <= ALWAYS_EXACT_ROWS:
        return "exact"
    return None


def by_neighbourhood(
    matches: float, k: int, ef_search: int, passed: int, probed: int
) -> FilterPlan:
    """The cheaper plan for a query whose ``probed`` nearest probes ``passed`` the filter."""
    rate = pass_rate(passed, probed)
    depth = predicted_depth(k, ef_search, rate)
    index_cost = min(depth, MAX_SCAN_TUPLES) * INDEX_VISIT_COST
    if depth > MAX_SCAN_TUPLES:  # the walk would stop short, then run exactly anyway
        index_cost += matches
    strategy = "exact" if matches <= index_cost else "index"
    return FilterPlan(strategy, matches, round(rate, 4), round(depth))
