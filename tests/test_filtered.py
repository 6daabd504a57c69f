"""Filtered search with filters that run against the query — the products
nearest the query fail the filter, so an index walks far before it finds ones that pass.
Whatever path the service takes, the page holds the best matches that satisfy the filter:
the exact scan's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from prodsearch.db.names import DEMO_CATALOG, EMBEDDINGS_NAME
from tests.test_api import make_client

QUERY = "brake pads"


def _exact(conn: psycopg.Connection, vec: np.ndarray, cap: float) -> list[tuple[int, float]]:
    return [
        (int(pid), float(d))
        for pid, d in conn.execute(
            f"SELECT e.product_id, e.embedding <=> %s FROM {EMBEDDINGS_NAME} e "
            f"JOIN {DEMO_CATALOG} s ON s.product_id = e.product_id "
            "WHERE NOT s.is_deleted AND s.price <= %s ORDER BY 2, 1 LIMIT 10",
            (vec, cap),
        )
    ]


def test_a_filter_against_the_query_returns_the_exact_scans_products(
    search_db: str, pg_root: Path
) -> None:
    with psycopg.connect(search_db) as conn:
        register_vector(conn)
        # a price cap under all but the cheapest 2 % of brake pads
        cap = float(
            conn.execute(
                "SELECT percentile_cont(0.02) WITHIN GROUP (ORDER BY price) "
                f"FROM {DEMO_CATALOG} WHERE category = 'Brake Pads' AND NOT is_deleted"
            ).fetchone()[0]
        )
        for settings in ({}, {"exact_filter_rows": 0}):  # the planner's path; the index
            with make_client(search_db, pg_root, **settings) as client:
                plain = client.post("/search/semantic", json={"query": QUERY, "limit": 50})
                res = client.post(
                    "/search/filtered",
                    json={"query": QUERY, "limit": 10, "filters": {"price_max": cap}},
                ).json()
                vec = np.asarray(client.app.state.prodsearch.searcher.vectors.cache.get(QUERY))
            # the filter runs against the query: nearly all of its neighbours fail it
            near = plain.json()["results"]
            assert sum(r["price"] <= cap for r in near) <= 5
            exact = _exact(conn, vec, cap)
            got = [r["product_id"] for r in res["results"]]
            assert len(got) == 10 and all(r["price"] <= cap for r in res["results"])
            if res["timings"]["strategy"] == "exact":
                assert got == [pid for pid, _d in exact]
            else:  # the index orders by half-precision distance: near-ties may swap
                found = dict(
                    conn.execute(
                        f"SELECT product_id, embedding <=> %s FROM {EMBEDDINGS_NAME} "
                        "WHERE product_id = ANY(%s)",
                        (vec, got),
                    ).fetchall()
                )
                assert all(found[p] <= exact[-1][1] + 1e-4 for p in got), (got, exact)
