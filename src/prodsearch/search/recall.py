"""Neighbour recall against exact search — one definition for the benches, ``verify`` and
the tests.

Exact neighbours come from a brute-force scan of the stored float32 vectors (index scans
off, so no HNSW index of either shape can answer). A returned product counts when its
exact distance is no larger than the exact ``k``-th neighbour's: tie-aware, since
duplicate texts share one vector and the order among equals is arbitrary. With
``epsilon`` > 0 this is ann-benchmarks' ε-recall: within ``(1 + ε)`` times the ``k``-th
distance.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from prodsearch.catalog.source import Source
from prodsearch.db.names import EMBEDDINGS

EPSILON = 0.01  # ann-benchmarks' ε for ε-recall
TIE = 1e-9  # float32 distances of one vector computed twice agree to this


def exact_top_k(
    conn: psycopg.Connection[Any],
    vector: Any,
    k: int = 10,
    source: Source | None = None,
    table: sql.Composable = EMBEDDINGS,
) -> list[tuple[int, float]]:
    """The ``k`` nearest (product id, float32 cosine distance) by brute force, nearest
    first; only live products of ``source`` when given (``table`` must then be the
    embeddings table)."""
    if source is None:
        query = sql.SQL(
            "SELECT e.product_id, e.embedding <=> %(q)s FROM {t} AS e ORDER BY 2 LIMIT %(k)s"
        ).format(t=table)
    else:
        query = sql.SQL(
            "SELECT e.product_id, e.embedding <=> %(q)s FROM {t} AS e "
            "JOIN {src} AS s ON s.{id} = e.product_id WHERE {eligible} ORDER BY 2 LIMIT %(k)s"
        ).format(t=table, **source.sql_parts())
    # session settings, reset right after: SET LOCAL inside a savepoint would outlive it
    # until the caller's transaction ends and turn every later index scan into a full scan
    conn.execute("SET enable_indexscan = off")
    conn.execute("SET enable_bitmapscan = off")
    try:
        return [(int(i), float(d)) for i, d in conn.execute(query, {"q": vector, "k": k})]
    finally:
        conn.execute("RESET enable_indexscan")
        conn.execute("RESET enable_bitmapscan")


def exact_distances(
    conn: psycopg.Connection[Any], vector: Any, ids: Iterable[int]
) -> dict[int, float]:
    """Float32 cosine distance from ``vector`` to each stored product of ``ids``."""
    rows = conn.execute(
        sql.SQL("SELECT product_id, embedding <=> %s FROM {} WHERE product_id = ANY(%s)").format(
            EMBEDDINGS
        ),
        (vector, list(ids)),
    )
    return {int(i): float(d) for i, d in rows}


def tie_aware_recall(
    distances: Sequence[float],
    kth: float,
    k: int = 10,
    epsilon: float = 0.0,
    tolerance: float = TIE,
) -> float:
    """Share of ``k`` results whose exact distance is within ``(1 + epsilon) * kth``
    (plus ``tolerance``, for distances computed in another precision)."""
    bound = (1 + epsilon) * kth + tolerance
    return sum(d <= bound for d in distances) / k
