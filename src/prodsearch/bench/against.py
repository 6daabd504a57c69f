"""Filters that run against the query, built per query for ``bench search``.

A filter is hard for an index when the products nearest the query fail it: the graph walk
passes through them all before it finds ones that pass. Such filters are built here by
construction, from the query's own neighbourhood: its *category* is the most common one
among its ten nearest products (the API's query vector, the API's index), and

* ``price_under_category`` — a price cap at 30 % of that category's median price;
* ``brand_without_part`` — the largest brand that makes nothing in that category;
* ``out_of_stock`` — ``in_stock: false``;
* ``in_stock_cheap`` — in stock and under half the category's median price.

The demo catalog's columns (category, brand, price, in_stock) are needed; another source
gets none of these.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import psycopg

from prodsearch.bench import sql as bench_sql
from prodsearch.db.hnsw import current_type, order_expression
from prodsearch.search import queries as search_sql
from prodsearch.search.service import Searcher

KINDS = ("price_under_category", "brand_without_part", "out_of_stock", "in_stock_cheap")
NEEDED = {"category", "brand", "price", "in_stock"}


def filters_for(
    kind: str,
    category: str,
    medians: dict[str, float],
    makers: dict[str, set[str]],
    sizes: dict[str, int],
) -> dict[str, Any]:
    median = medians.get(category, 0.0)
    if kind == "price_under_category":
        return {"price_max": round(0.3 * median, 2)}
    if kind == "brand_without_part":
        others = [b for b in sizes if b not in makers.get(category, set())]
        if not others:  # every brand makes it: the smallest brand is the least likely
            return {"brand": min(sizes, key=lambda b: (sizes[b], b))}
        return {"brand": max(others, key=lambda b: (sizes[b], b))}
    if kind == "out_of_stock":
        return {"in_stock": False}
    return {"in_stock": True, "price_max": round(0.5 * median, 2)}


def against(
    conn: psycopg.Connection[Any], searcher: Searcher, queries: Sequence[str]
) -> list[tuple[str, str, dict[str, Any]]]:
    """(query, kind, filters) for every query, the kinds taken in turn; empty when the
    source lacks the demo's filter columns."""
    source = searcher.source
    if not set(source.columns) >= NEEDED:
        return []
    medians, makers, sizes = bench_sql.category_profile(conn, source)
    order = order_expression(current_type(conn), searcher.encoder.dim)
    out = []
    for i, q in enumerate(queries):
        vector = searcher.vectors.vector(q)
        with conn.transaction():
            ids = search_sql.approximate_neighbours(conn, source, vector, order, 100, k=10)
        cats = bench_sql.categories_of(conn, source, ids)
        conn.commit()
        if not cats:
            continue
        category = Counter(cats).most_common(1)[0][0]
        kind = KINDS[i % len(KINDS)]
        out.append((q, kind, filters_for(kind, category, medians, makers, sizes)))
    return out
