"""A filtered query's plan comes from the filter's selectivity *and* how the
query's own neighbourhood passes it (search.filterplan); and a plan changes speed, never
the products: a filtered index walk that stops at pgvector's scan limit is rerun exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg
import pytest
from pgvector.psycopg import register_vector

from prodsearch.db.names import DEMO_CATALOG, EMBEDDINGS_NAME
from prodsearch.search import filterplan
from tests.test_api import make_client

QUERY = "brake pads"
# planner switches that take every plan but the graph walk off the table
STEER = ("enable_sort", "enable_seqscan", "enable_bitmapscan", "enable_indexonlyscan")


CATALOG, PROBES = 274_507, 2048  # the 278k catalog: each probe stands for ~134 products


def _plan(matches: float, passing: list[bool], k: int = 10, seq_scan: bool = False) -> str:
    pending = filterplan.FilterPlan("pending", matches, seq_scan)
    return filterplan.by_neighbourhood(pending, k, 300, passing, CATALOG, PROBES).strategy


def test_the_cheaper_plan_by_the_neighbourhoods_passing() -> None:
    # the estimate alone: a handful of matches are scored, a huge set walks the index
    assert filterplan.by_selectivity(500, 20_000) == "exact"
    assert filterplan.by_selectivity(90_000, 20_000) == "index"
    assert filterplan.by_selectivity(5_000, 20_000) is None  # the neighbourhood decides
    assert filterplan.by_selectivity(500, 0) == "index"  # exact plans switched off
    # out of stock: 15,000 matches that only a sequential scan finds, while one in ten of
    # the query's neighbours passes -> a walk of a few hundred products
    some = [i % 10 == 2 for i in range(64)]
    assert _plan(15_000, some, seq_scan=True) == "index"
    depth = filterplan.predicted_depth(10, 300, some, CATALOG, PROBES, 15_000)
    assert depth < 1_000
    # a brand or category far from the query: none of its 64 nearest probes pass, so the
    # walk passes ~8,600 products before it reaches any -> scoring the matches is cheaper
    none = [False] * 64
    assert filterplan.predicted_depth(10, 300, none, CATALOG, PROBES, 5_000) > 64 * 134
    assert _plan(5_000, none) == "exact" and _plan(19_000, none) == "exact"
    # the query's own category: its neighbours all pass -> the walk
    assert _plan(9_000, [True] * 64) == "index"
    # a deep page: a walk past the scan limit pays for the exact rerun it will need too
    assert _plan(19_000, [i % 32 == 0 for i in range(64)], k=1000) == "exact"
    # a small catalog: every product is a probe, and the depth is the rank at which the
    # k-th passing product comes
    flags = [i % 4 == 0 for i in range(64)]
    assert filterplan.predicted_depth(5, 1, flags, 1_500, 1_500, 400) == 16.5


def _category_near_and_far(conn: psycopg.Connection, client_vec: np.ndarray) -> tuple[str, str]:
    """The category of the query's nearest products, and the one farthest from it."""
    rows = conn.execute(
        f"SELECT s.category, avg(e.embedding <=> %s) FROM {EMBEDDINGS_NAME} e "
        f"JOIN {DEMO_CATALOG} s ON s.product_id = e.product_id WHERE NOT s.is_deleted "
        "GROUP BY 1 HAVING count(*) >= 10 ORDER BY 2",
        (client_vec,),
    ).fetchall()
    return rows[0][0], rows[-1][0]


def test_the_neighbourhood_is_asked_and_counted_in_the_real_database(
    search_db: str, pg_root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # at 1,500 products every filter matches few enough to be scored outright; lower the
    # floor so the neighbourhood is asked, as it is for mid-sized filters at full scale
    monkeypatch.setattr(filterplan, "ALWAYS_EXACT_ROWS", 0)
    with psycopg.connect(search_db) as conn, make_client(search_db, pg_root) as client:
        register_vector(conn)
        client.post("/search/semantic", json={"query": QUERY, "limit": 1})
        vec = np.asarray(client.app.state.prodsearch.searcher.vectors.cache.get(QUERY))
        near, far = _category_near_and_far(conn, vec)
        timings = {}
        for category in (near, far):
            res = client.post(
                "/search/filtered",
                json={"query": QUERY, "limit": 10, "filters": {"category": category}},
            )
            assert res.status_code == 200, res.text
            body = res.json()
            timings[category] = body["timings"]
            assert body["results"] and all(r["category"] == category for r in body["results"])
            matches = conn.execute(
                f"SELECT count(*) FROM {DEMO_CATALOG} WHERE category = %s AND NOT is_deleted",
                (category,),
            ).fetchone()[0]
            assert body["timings"]["filter_matches"] > 0 and matches > 0
        # the query's own category passes its neighbourhood; the farthest one does not
        assert timings[near]["neighbourhood_pass"] > 0.5, timings
        assert timings[far]["neighbourhood_pass"] < 0.1, timings
        # a small category none of whose products are near the query: scored exactly
        assert timings[far]["strategy"] == "exact", timings


def test_a_walk_stopped_by_the_scan_limit_is_rerun_exactly(
    search_db: str, pg_root: Path, pg_url: str
) -> None:
    """pgvector's iterative scan gives up after ``hnsw.max_scan_tuples`` visited products
    and returns what it has: with a filter the query's neighbours fail, fewer than asked.
    The service notices and scores every match: the page is the exact scan's."""
    dbname = psycopg.conninfo.conninfo_to_dict(search_db)["dbname"]
    with psycopg.connect(pg_url, autocommit=True) as admin:
        admin.execute(f"ALTER DATABASE {dbname} SET hnsw.max_scan_tuples = 10")
        # at 1,500 products the planner would rather sort a few hundred matches than walk
        # the graph: steer it to the walk this test is about
        for knob in STEER:
            admin.execute(f"ALTER DATABASE {dbname} SET {knob} = off")
    try:
        with (
            psycopg.connect(search_db) as conn,
            make_client(
                search_db,
                pg_root,
                exact_filter_rows=0,  # the index path for every filter
            ) as client,
        ):
            register_vector(conn)
            # the cheapest 1 % of the catalog: a filter nearly every product fails, the
            # query's neighbours included
            cap = float(
                conn.execute(
                    "SELECT percentile_cont(0.01) WITHIN GROUP (ORDER BY price) "
                    f"FROM {DEMO_CATALOG} WHERE NOT is_deleted"
                ).fetchone()[0]
            )
            res = client.post(
                "/search/filtered",
                # the smallest candidate list, so the walk's first pass is short too
                json={"query": QUERY, "limit": 10, "filters": {"price_max": cap}, "ef_search": 10},
            ).json()
            vec = np.asarray(client.app.state.prodsearch.searcher.vectors.cache.get(QUERY))
            exact = conn.execute(
                f"SELECT e.product_id FROM {EMBEDDINGS_NAME} e "
                f"JOIN {DEMO_CATALOG} s ON s.product_id = e.product_id "
                "WHERE NOT s.is_deleted AND s.price <= %s ORDER BY e.embedding <=> %s, 1 "
                "LIMIT 10",
                (cap, vec),
            ).fetchall()
        assert res["timings"]["strategy"] == "exact" and res["timings"]["widened"] is True
        assert [r["product_id"] for r in res["results"]] == [p for (p,) in exact]
    finally:
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute(f"ALTER DATABASE {dbname} RESET hnsw.max_scan_tuples")
            for knob in STEER:
                admin.execute(f"ALTER DATABASE {dbname} RESET {knob}")


def test_numeric_bounds_reach_the_planner_in_the_columns_type(search_db: str) -> None:
    """A price bound compared as float8 hid the column's statistics (every estimate a
    fixed third of the table) and its index; in the column's type the estimate follows
    the bound, and an integer column gets the whole number with the same meaning."""
    from prodsearch.catalog.source import load_source
    from prodsearch.config import Settings
    from prodsearch.search import queries
    from prodsearch.search.filters import _bound, condition

    assert _bound(12.5, "max", "integer") == 12 and _bound(12.5, "min", "integer") == 13
    assert _bound(1e30, "max", "bigint") == 2**63 - 1 and _bound(12.5, "max", "numeric") == 12.5
    with psycopg.connect(search_db) as conn:
        source = load_source(conn, Settings(database_url=search_db))
        for cap in (20.0, 200.0, 2000.0):
            where, params = condition(source, {"price_max": cap})
            plan = conn.execute(queries.match_estimate(source, where), params).fetchone()[0]
            estimate = plan[0]["Plan"]["Plan Rows"]
            real = conn.execute(
                f"SELECT count(*) FROM {DEMO_CATALOG} WHERE price <= %s", (cap,)
            ).fetchone()[0]
            assert real / 2 - 5 <= estimate <= real * 2 + 5, (cap, estimate, real)


def test_bench_search_reports_how_many_queries_took_each_path() -> None:
    from collections import Counter

    from prodsearch.bench.search import _paths

    assert _paths(Counter({"exact": 100, "widened": 0})) == "exact"
    assert (
        _paths(Counter({"exact": 62, "index": 38, "widened": 3})) == "exact 62, index 38, widened 3"
    )
