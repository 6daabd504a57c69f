"""The new search fields — explain, facets, ef_search, exact — and what they
show: synonyms, typo correction, Polish matching, vehicle-aware ranking."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from prodsearch.db.names import DEMO_CATALOG
from tests.test_api import make_client


@pytest.fixture(scope="module")
def client(search_db: str, pg_root: Path) -> Iterator[TestClient]:
    with make_client(search_db, pg_root) as c:
        yield c


def _post(client: TestClient, path: str, **body: Any) -> dict[str, Any]:
    res = client.post(path, json=body)
    assert res.status_code == 200, res.text
    return res.json()


def test_explain_carries_score_parts(client: TestClient) -> None:
    body = _post(client, "/search/hybrid", query="klocki hamulcowe", limit=10, explain=True)
    assert body["explain"]["lexical_query"] and body["explain"]["candidates"] >= 10
    for r in body["results"]:
        parts = r["explain"]
        assert set(parts) >= {
            "semantic_rank",
            "distance",
            "lexical_rank",
            "lexical_score",
            "code_match",
            "vehicle_match",
        }
        assert parts["semantic_rank"] is not None or parts["lexical_rank"] is not None
    sem = _post(client, "/search/semantic", query="brake pads", limit=5, explain=True)
    assert all(0 <= r["explain"]["distance"] <= 2 for r in sem["results"])
    assert [r["explain"]["semantic_rank"] for r in sem["results"]] == [1, 2, 3, 4, 5]
    plain = _post(client, "/search/semantic", query="brake pads", limit=5)
    assert "explain" not in plain and all("explain" not in r for r in plain["results"])


def test_facets_count_the_candidates(client: TestClient) -> None:
    body = _post(client, "/search/hybrid", query="filtr oleju", limit=5, facets=True, explain=True)
    facets = body["facets"]
    assert set(facets) == {"category", "brand"}
    assert sum(f["count"] for f in facets["category"]) == body["explain"]["candidates"]
    assert facets["category"][0]["value"] == "Oil Filters"
    counts = [f["count"] for f in facets["brand"]]
    assert counts == sorted(counts, reverse=True)
    # a facet value, used as a filter, returns only that value
    brand = facets["brand"][0]["value"]
    got = _post(client, "/search/filtered", query="filtr oleju", filters={"brand": brand})
    assert got["results"] and {r["brand"] for r in got["results"]} == {brand}


def test_ef_search_and_exact_are_validated_and_used(client: TestClient) -> None:
    for bad in (0, 5, 1001, "100", True):
        res = client.post("/search/semantic", json={"query": "oil filter", "ef_search": bad})
        assert res.status_code == 422, bad
    assert client.post("/search/semantic", json={"query": "x", "exact": "yes"}).status_code == 422
    hi = _post(client, "/search/semantic", query="oil filter", limit=10, ef_search=400)
    ex = _post(client, "/search/semantic", query="oil filter", limit=10, exact=True)
    assert hi["timings"]["strategy"] == "index" and ex["timings"]["strategy"] == "exact"
    assert [r["score"] for r in ex["results"]] == sorted(
        (r["score"] for r in ex["results"]), reverse=True
    )
    assert client.get("/search/similar/100050?ef_search=3").status_code in (404, 422)


def test_synonyms_typos_and_polish_reach_the_right_category(client: TestClient) -> None:
    cases = {
        "wishbone": "Control Arms",
        "alternater": "Alternators",
        "sprezyna zawieszenia": "Coil Springs",
        "tarcze hamulcowe": "Brake Discs",
        "swiece zarowe": "Glow Plugs",
    }
    for query, category in cases.items():
        for path in ("/search/hybrid", "/search/semantic"):
            body = _post(client, path, query=query, limit=5, explain=True)
            cats = [r["category"] for r in body["results"]]
            assert cats[0] == category and cats.count(category) >= 3, (path, query, cats)
    typo = _post(client, "/search/hybrid", query="alternater", limit=3, explain=True)
    assert typo["explain"]["corrected"] == {"alternater": "alternator"}


def test_vehicle_named_in_the_query_ranks_first(client: TestClient, search_db: str) -> None:
    with psycopg.connect(search_db) as conn:
        row = conn.execute(
            f"SELECT vehicle, count(*) FROM {DEMO_CATALOG} WHERE category = "
            "'Brake Pads' AND NOT is_deleted GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 1"
        ).fetchone()
    assert row is not None
    vehicle, count = row
    model = vehicle.split(" ", 2)[1]  # "VW Golf VII" -> "Golf"
    for path in ("/search/hybrid", "/search/semantic"):
        body = _post(client, path, query=f"klocki hamulcowe {vehicle}", limit=count, explain=True)
        assert vehicle in body["explain"]["vehicles"]
        top = body["results"][: min(count, 3)]
        assert all(r["explain"]["vehicle_match"] == 1 for r in top), (path, top)
        assert all(model in r["name"] for r in top)


def test_custom_synonyms_file(search_db: str, pg_root: Path, tmp_path: Path) -> None:
    path = tmp_path / "syn.txt"
    path.write_text("oil filter, gizmo\n", "utf-8")
    with make_client(search_db, pg_root, synonyms=str(path)) as c:
        body = _post(c, "/search/hybrid", query="gizmo", limit=5, explain=True)
        assert body["explain"]["synonyms"] == ["oil filter"]
        assert all(r["category"] == "Oil Filters" for r in body["results"])
        # the shipped set is replaced: its trade words are no longer expanded
        assert (
            _post(c, "/search/hybrid", query="wishbone", explain=True)["explain"]["synonyms"] == []
        )


def test_statements_are_reused_by_shape_never_by_value(client: TestClient) -> None:
    """Composed SQL is cached per shape (endpoint, strategy, filter clause): requests with
    the same filter keys and other values share a statement and still get their own
    values' results."""
    searcher = client.app.state.prodsearch.searcher  # type: ignore[attr-defined]
    facets = _post(client, "/search/hybrid", query="brake pads", facets=True)["facets"]
    brands = [f["value"] for f in facets["brand"][:2]]
    assert len(brands) == 2
    sizes = []
    for brand in brands:
        for path in ("/search/filtered", "/search/hybrid"):
            got = _post(client, path, query="brake pads", limit=10, filters={"brand": brand})
            assert got["results"] and {r["brand"] for r in got["results"]} == {brand}
        sizes.append(len(searcher.statements))
    assert sizes[1] == sizes[0]  # the second brand composed nothing new
    texts = b" ".join(searcher.statements.texts())
    assert not any(brand.encode() in texts for brand in brands)
