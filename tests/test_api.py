"""Every endpoint's success and error paths, real database and real model."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from fastapi.testclient import TestClient
from pgvector.psycopg import register_vector

from prodsearch.api.app import create_app
from prodsearch.config import Settings
from prodsearch.db.names import DEMO_CATALOG, EMBEDDINGS_NAME
from tests.conftest import run_cli


def make_client(url: str, pg_root: Path, **extra: Any) -> TestClient:
    settings = Settings(home=pg_root, database_url=url, mode="int8", **extra)
    return TestClient(create_app(settings))


@pytest.fixture(scope="module")
def client(search_db: str, pg_root: Path) -> Iterator[TestClient]:
    with make_client(search_db, pg_root) as c:
        yield c


def test_semantic(client: TestClient) -> None:
    res = client.post("/search/semantic", json={"query": "front brake pads", "limit": 10})
    assert res.status_code == 200
    body = res.json()
    assert body["count"] == 10 == len(body["results"])
    assert set(body["timings"]) >= {"embed_ms", "search_ms"} and body["execution_time_ms"] > 0
    first = body["results"][0]
    assert set(first) >= {
        "product_id",
        "name",
        "polish_name",
        "category",
        "brand",
        "price",
        "in_stock",
        "score",
    }
    assert first["category"] == "Brake Pads"
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    page = client.post("/search/semantic", json={"query": "front brake pads", "limit": 20}).json()
    page2 = client.post(
        "/search/semantic", json={"query": "front brake pads", "limit": 10, "offset": 10}
    ).json()
    assert [r["product_id"] for r in page2["results"]] == [
        r["product_id"] for r in page["results"][10:]
    ]
    # a page deeper than ef_search (300) raises it for that query only
    deep = client.post(
        "/search/semantic", json={"query": "front brake pads", "limit": 100, "offset": 250}
    ).json()
    assert deep["count"] == 100 and len({r["product_id"] for r in deep["results"]}) == 100
    assert deep["results"][0]["score"] <= page["results"][-1]["score"]
    again = client.post("/search/semantic", json={"query": "Front  BRAKE pads", "limit": 10})
    assert again.json()["timings"]["cached_embedding"] is True


def test_filtered_honours_every_filter(client: TestClient, search_db: str) -> None:
    filters = {"category": "Brake Pads", "price_max": 150, "in_stock": True}
    res = client.post("/search/filtered", json={"query": "brake", "limit": 50, "filters": filters})
    assert res.status_code == 200
    rows = res.json()["results"]
    assert rows and all(
        r["category"] == "Brake Pads" and r["price"] <= 150 and r["in_stock"] for r in rows
    )
    # a selective filter still fills the page when enough products match (iterative scan)
    with psycopg.connect(search_db) as conn:
        brand, n = conn.execute(
            f"SELECT brand, count(*) FROM {DEMO_CATALOG} WHERE NOT is_deleted "
            "AND category = 'Spark Plugs' GROUP BY brand ORDER BY 2 DESC LIMIT 1"
        ).fetchone()
    res = client.post(
        "/search/filtered",
        json={
            "query": "front brake pads",
            "limit": 100,
            "filters": {"category": ["Spark Plugs"], "brand": brand},
        },
    )
    got = res.json()["results"]
    assert len(got) == min(100, n)
    assert all(r["brand"] == brand and r["category"] == "Spark Plugs" for r in got)


def test_filtered_strategy_exact_or_index(search_db: str, pg_root: Path) -> None:
    """A filter the planner expects to match few products is scored exactly (the same ids,
    in the same order, as brute force); with the exact path off (0) the iterative HNSW scan
    answers and still fills the page."""
    filters = {"category": "Spark Plugs", "in_stock": True}
    with psycopg.connect(search_db) as conn:
        register_vector(conn)
        n = conn.execute(
            f"SELECT count(*) FROM {DEMO_CATALOG} WHERE NOT is_deleted "
            "AND category = 'Spark Plugs' AND in_stock"
        ).fetchone()[0]
        assert n >= 12
        with make_client(search_db, pg_root) as exact_client:
            res = exact_client.post(
                "/search/filtered",
                json={"query": "iridium spark plug", "limit": 10, "filters": filters},
            ).json()
            vec = exact_client.app.state.prodsearch.searcher.vectors.cache.get("iridium spark plug")
        assert res["timings"]["strategy"] == "exact"
        brute = conn.execute(
            f"SELECT e.product_id FROM {EMBEDDINGS_NAME} e "
            f"JOIN {DEMO_CATALOG} s ON s.product_id = e.product_id "
            "WHERE NOT s.is_deleted AND s.category = 'Spark Plugs' AND s.in_stock "
            "ORDER BY e.embedding <=> %s, e.product_id LIMIT 10",
            (np.asarray(vec),),
        ).fetchall()
    assert [r["product_id"] for r in res["results"]] == [b[0] for b in brute]
    with make_client(search_db, pg_root, exact_filter_rows=0) as index_client:
        res = index_client.post(
            "/search/filtered",
            json={"query": "iridium spark plug", "limit": 100, "filters": filters},
        ).json()
    assert res["timings"]["strategy"] == "index"
    assert res["count"] == min(100, n)
    assert all(r["category"] == "Spark Plugs" and r["in_stock"] for r in res["results"])


def test_filtered_errors(client: TestClient) -> None:
    res = client.post("/search/filtered", json={"query": "x", "filters": {"colour": "red"}})
    assert res.status_code == 422
    msg = res.json()["error"]
    assert "colour" in msg and "category" in msg and "price_min" in msg and "in_stock" in msg
    res = client.post("/search/filtered", json={"query": "x", "filters": {"price_max": "cheap"}})
    assert res.status_code == 422 and "number" in res.json()["error"]
    res = client.post("/search/filtered", json={"query": "x", "filters": {"in_stock": "yes"}})
    assert res.status_code == 422


def test_hybrid_polish_and_codes(client: TestClient, search_db: str, pg_root: Path) -> None:
    res = client.post("/search/hybrid", json={"query": "klocki hamulcowe", "limit": 10})
    assert res.status_code == 200
    top = res.json()["results"]
    assert all(r["category"] == "Brake Pads" for r in top[:10])
    polish = [r for r in top[:10] if r["polish_name"]]
    # a Polish query: the title is the Polish name where the product has one
    assert polish and all(r["title"] == r["polish_name"] for r in polish)
    assert res.json()["query_language"] == "pl"
    with psycopg.connect(search_db) as conn:
        rows = conn.execute(
            f"SELECT product_id, sku, part_number FROM {DEMO_CATALOG} "
            "WHERE NOT is_deleted AND part_number ~ '[ ./-]' ORDER BY product_id LIMIT 3"
        ).fetchall()
    for pid, sku, part in rows:
        squeezed = "".join(ch for ch in part if ch.isalnum())
        for query in (part, squeezed, part.replace(" ", "-"), sku, sku.lower()):
            body = client.post("/search/hybrid", json={"query": query, "limit": 5}).json()
            assert body["results"][0]["product_id"] == pid, (query, body["results"][:2])
    res = client.post(
        "/search/hybrid", json={"query": "oil filter", "rrf_k": 10, "filters": {"brand": "Bosch"}}
    )
    body = res.json()
    assert res.status_code == 200 and body["results"]
    assert all(r["brand"] == "Bosch" for r in body["results"])
    assert body["timings"]["strategy"] == "exact"  # 1,500 products: every filter is small
    with make_client(search_db, pg_root, exact_filter_rows=0) as index_client:
        via_index = index_client.post(
            "/search/hybrid",
            json={"query": "oil filter", "rrf_k": 10, "filters": {"brand": "Bosch"}},
        ).json()
    assert via_index["timings"]["strategy"] == "index"
    assert via_index["results"] and all(r["brand"] == "Bosch" for r in via_index["results"])
    assert client.post("/search/hybrid", json={"query": "x", "rrf_k": 0}).status_code == 422


def test_similar(client: TestClient, search_db: str) -> None:
    with psycopg.connect(search_db) as conn:
        (pid,) = conn.execute(
            f"SELECT product_id FROM {EMBEDDINGS_NAME} ORDER BY 1 LIMIT 1"
        ).fetchone()
        (deleted,) = conn.execute(
            f"SELECT product_id FROM {DEMO_CATALOG} WHERE is_deleted LIMIT 1"
        ).fetchone()
        conn.execute(
            f"INSERT INTO {DEMO_CATALOG} (product_id, name) "
            "VALUES (42, 'Fresh product') ON CONFLICT DO NOTHING"
        )
    try:
        res = client.get(f"/search/similar/{pid}?limit=7")
        assert res.status_code == 200
        ids = [r["product_id"] for r in res.json()["results"]]
        assert len(ids) == 7 and pid not in ids
        for missing, words in (
            (999_999_999, "does not exist"),
            (42, "not embedded yet"),
            (deleted, "is deleted"),
        ):
            res = client.get(f"/search/similar/{missing}")
            assert res.status_code == 404 and words in res.json()["error"]
    finally:  # the catalog is shared by the whole session
        with psycopg.connect(search_db) as conn:
            conn.execute(f"DELETE FROM {DEMO_CATALOG} WHERE product_id = 42")
    assert client.get(f"/search/similar/{pid}?limit=0").status_code == 422
    assert client.get("/search/similar/abc").status_code == 422


@pytest.mark.parametrize(
    "body",
    [
        {"query": ""},
        {"query": "   "},
        {"query": "x" * 513},
        {"query": "x", "limit": 0},
        {"query": "x", "limit": 101},
        {"query": "x", "offset": -1},
        {"query": 5},
        {"query": "x", "limit": "10"},
        {"limit": 5},
        {"query": "x", "unknown": 1},
        ["x"],
    ],
)
def test_bad_input_is_422_never_500(client: TestClient, body: Any) -> None:
    for path in ("/search/semantic", "/search/filtered", "/search/hybrid"):
        res = client.post(path, json=body)
        assert res.status_code == 422, (path, body, res.text)
        assert res.json()["error"]


def test_malformed_json(client: TestClient) -> None:
    res = client.post(
        "/search/semantic", content=b'{"query": "x",', headers={"content-type": "application/json"}
    )
    assert res.status_code == 422 and "JSON" in res.json()["error"]


def test_deleted_products_never_returned(client: TestClient, search_db: str) -> None:
    first = client.post("/search/semantic", json={"query": "wiper blade", "limit": 1})
    pid = first.json()["results"][0]["product_id"]
    with psycopg.connect(search_db) as conn:
        conn.execute(f"UPDATE {DEMO_CATALOG} SET is_deleted = true WHERE product_id = %s", (pid,))
    try:
        again = client.post("/search/semantic", json={"query": "wiper blade", "limit": 20})
        assert pid not in [r["product_id"] for r in again.json()["results"]]
    finally:
        with psycopg.connect(search_db) as conn:
            conn.execute(
                f"UPDATE {DEMO_CATALOG} SET is_deleted = false WHERE product_id = %s",
                (pid,),
            )


def test_recall_against_exact_search(client: TestClient) -> None:
    """Tie-aware recall@10 of the index path against the API's own brute force
    (``"exact": true``) for the same query vector: a returned product counts when it is no
    farther than the 10th exact neighbour (duplicate texts have identical vectors, so id
    sets alone would punish arbitrary tie-breaking)."""
    from prodsearch.bench.workload import CATALOG_QUERIES
    from prodsearch.search.recall import tie_aware_recall

    scores = []
    queries = list(CATALOG_QUERIES[:30])
    for q in queries:
        # the index's recall for the query as typed (no constraints understood)
        body = {"query": q, "limit": 10, "explain": True, "understand": False}
        got = client.post("/search/semantic", json=body).json()
        exact = client.post("/search/semantic", json={**body, "exact": True}).json()
        assert got["timings"]["strategy"] == "index" and exact["timings"]["strategy"] == "exact"
        assert got["explain"]["semantic_text"] == exact["explain"]["semantic_text"]
        kth = max(r["explain"]["distance"] for r in exact["results"])
        found = [r["explain"]["distance"] for r in got["results"]]
        # the index path reports halfvec distances: equal within half precision
        scores.append(tie_aware_recall(found, kth, tolerance=2e-3))
    assert sum(scores) / len(scores) >= 0.98


def test_health_and_metrics(client: TestClient) -> None:
    res = client.get("/health")
    assert res.status_code == 200
    h = res.json()
    assert h["database"] == "ok" and h["model"].endswith("all-MiniLM-L6-v2") and h["mode"] == "int8"
    assert h["query_mode"] == "int8"
    assert h["embeddings"] > 0 and h["products"] > 0 and h["index"]["state"] == "valid"
    assert h["coverage"] >= 99.0
    client.post("/search/semantic", json={"query": "spark plug"})
    text = client.get("/metrics").text
    assert (
        'prodsearch_requests_total{endpoint="/search/semantic",method="POST",status="200"}' in text
    )
    assert (
        'prodsearch_request_duration_seconds_bucket{endpoint="/search/semantic",le="+Inf"}' in text
    )
    assert "prodsearch_embed_seconds_total" in text and "prodsearch_search_seconds_total" in text


def test_health_503_when_database_is_gone(pg_url: str, pg_root: Path, search_db: str) -> None:
    from psycopg.conninfo import make_conninfo

    with psycopg.connect(pg_url, autocommit=True) as c:
        c.execute("CREATE DATABASE gone_db TEMPLATE prodsearch_template")
    url = make_conninfo(pg_url, dbname="gone_db")
    with make_client(url, pg_root) as c:
        assert c.get("/health").status_code == 200
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("DROP DATABASE gone_db WITH (FORCE)")
        res = c.get("/health")
        assert res.status_code == 503
        assert res.json()["database"] == "unreachable" and res.json()["error"]


def test_api_key(search_db: str, pg_root: Path) -> None:
    with make_client(search_db, pg_root, api_key="s3cret") as c:
        assert c.post("/search/semantic", json={"query": "pads"}).status_code == 401
        ok = c.post("/search/semantic", json={"query": "pads"}, headers={"X-API-Key": "s3cret"})
        assert ok.status_code == 200
        assert c.get("/health").status_code == 200  # health stays open for probes


def test_cli_search(search_db: str, pg_root: Path) -> None:
    env = {"DATABASE_URL": search_db, "PRODSEARCH_HOME": str(pg_root), "PRODSEARCH_MODE": "int8"}
    res = run_cli(
        "search",
        "brake pads",
        "--mode",
        "filtered",
        "--filter",
        "category=Brake Pads",
        "--filter",
        "price_max=120",
        "--limit",
        "5",
        "--json",
        env=env,
    )
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)["results"]
    assert len(rows) == 5 and all(r["category"] == "Brake Pads" and r["price"] <= 120 for r in rows)
    bad = run_cli("search", "x", "--filter", "colour=red", env=env)
    assert bad.returncode == 1 and "KEY=VALUE" in bad.stderr


def test_web_page_is_served(client: TestClient) -> None:
    res = client.get("/")
    assert res.status_code == 200 and res.headers["content-type"].startswith("text/html")
    html = res.text
    for needle in (
        '<label for="q"',
        'value="hybrid"',
        'id="category"',
        'id="in_stock"',
        "/search/similar/",
        'aria-live="polite"',
    ):
        assert needle in html, needle
    assert "http://" not in html and "https://" not in html  # no CDN, no external fonts
    facets = client.get("/search/filters").json()
    assert "Brake Pads" in facets["values"]["category"] and facets["keys"]["in_stock"] == "bool"


def test_bench_search_command(search_db: str, pg_root: Path) -> None:
    """`prodsearch bench search` as a user runs it: it starts its own server, loads each
    endpoint, measures recall against brute force and times the original path."""
    env = {"DATABASE_URL": search_db, "PRODSEARCH_HOME": str(pg_root), "PRODSEARCH_MODE": "int8"}
    res = run_cli(
        "bench",
        "search",
        "--endpoints",
        "semantic,similar",
        "--concurrency",
        "1,2",
        "--queries",
        "40",
        "--recall-queries",
        "12",
        "--baseline-queries",
        "3",
        "--json",
        env=env,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    rows = {(r["endpoint"], r["concurrency"]): r for r in out["endpoints"]}
    assert set(rows) == {("semantic", 1), ("semantic", 2), ("similar", 1), ("similar", 2)}
    assert all(r["requests"] == 40 and r["errors"] == 0 for r in rows.values())
    assert all(0 < r["p50_ms"] <= r["p95_ms"] <= r["p99_ms"] for r in rows.values())
    # 1,500 products: the HNSW graph search finds (almost) exactly the brute-force top 10
    assert out["recall"]["queries"] >= 12 and out["recall"]["eps"] >= 0.95
    assert out["baseline"]["queries"] == 3 and out["baseline"]["ratio_p50"] > 0


def _requests_by_process(folder: Path) -> dict[str, float]:
    """Semantic-search requests counted in each worker's sample file."""
    from prometheus_client.mmap_dict import MmapedDict

    out = {}
    for path in folder.glob("counter_*.db"):
        total = 0.0
        for key, value, *_ in MmapedDict.read_all_values_from_file(str(path)):
            _metric, name, labels, *_ = json.loads(key)
            if name == "prodsearch_requests_total" and labels["endpoint"] == "/search/semantic":
                total += value
        out[path.stem] = total
    return out


def test_metrics_add_up_over_two_workers(search_db: str, pg_root: Path) -> None:
    """`serve --workers 2`: whichever worker answers a scrape, it reports the requests
    of both (prometheus-client's multiprocess mode)."""
    import re

    import httpx

    from tests.helpers import served_api

    env = {"DATABASE_URL": search_db, "PRODSEARCH_HOME": str(pg_root), "PRODSEARCH_MODE": "int8"}
    with served_api(env, "--workers", "2") as url:
        folder = pg_root / "run" / f"metrics-{url.rsplit(':', 1)[1]}"
        sent = 0
        while sent < 400 and sum(v > 0 for v in _requests_by_process(folder).values()) < 2:
            for _ in range(10):  # a new connection each: the kernel spreads them over workers
                res = httpx.post(url + "/search/semantic", json={"query": "brake pads"})
                assert res.status_code == 200
                sent += 1
        assert sum(v > 0 for v in _requests_by_process(folder).values()) == 2, "one worker only"
        pattern = re.compile(
            r'^prodsearch_requests_total\{endpoint="/search/semantic",method="POST",'
            r'status="200"\} (\S+)$',
            re.M,
        )
        for _ in range(8):  # scrapes land on either worker
            text = httpx.get(url + "/metrics").text
            assert float(pattern.findall(text)[0]) == sent


def test_bench_index_command(search_db: str, pg_root: Path, tmp_path: Path) -> None:
    """`prodsearch bench index --existing`: recall and latency per ef_search, and the plot."""
    env = {"DATABASE_URL": search_db, "PRODSEARCH_HOME": str(pg_root), "PRODSEARCH_MODE": "int8"}
    png = tmp_path / "ef.png"
    res = run_cli(
        "bench",
        "index",
        "--existing",
        "--ef",
        "20,200",
        "--queries",
        "60",
        "--plot",
        str(png),
        "--json",
        env=env,
    )
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout)
    (shape,) = out["shapes"]
    # the default ef_construction is sized to the table: a small one gets the small build
    assert (shape["m"], shape["ef_construction"]) == (16, 64) and out["rows"] > 1000
    low, high = shape["by_ef"]
    assert 0 < low["recall_at_10"] <= low["eps_recall_at_10"] <= 1
    # on 1,500 products an ef_search of 200 explores nearly the whole graph
    assert high["eps_recall_at_10"] >= 0.99 and high["recall_at_10"] >= low["recall_at_10"]
    assert png.stat().st_size > 10_000
