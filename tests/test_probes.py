"""A graph search that provably missed the nearest products (a sample
product is closer than its best result) is searched again, wider, then exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import psycopg

from prodsearch.db import hnsw
from prodsearch.search.probes import MARGIN, TrapProbes
from tests.test_api import make_client

QUERIES = (
    "brake pads",
    "oil filter",
    "coolant pump",
    "klocki hamulcowe",
    "wiper blades",
    "spark plugs ngk",
    "shock absorber rear",
    "h7 bulb",
    "timing belt kit",
    "alternator",
    "sofa",
    "garden chair",
)


def test_probes_flag_only_a_provable_miss() -> None:
    vectors = np.eye(3, dtype=np.float32)
    probes = TrapProbes([1, 2, 3], vectors)
    query = np.array([1.0, 0.0, 0.0], dtype=np.float32)
    assert probes.nearest(query) == 0.0
    assert probes.missed(query, 0.5)  # product 1 is at 0, the search's best at 0.5
    assert not probes.missed(query, MARGIN / 2)  # within the margin: no proof
    # the product a "similar" search starts from does not count against it
    assert probes.nearest(query, exclude=1) == 1.0
    assert not probes.missed(query, 0.99, exclude=1)
    assert not TrapProbes().missed(query, 2.0)  # no probes, no claim


def test_a_search_the_index_missed_is_searched_again(search_db: str, pg_root: Path) -> None:
    with psycopg.connect(search_db) as conn:
        hnsw.build(conn, "halfvec", m=2, ef_construction=4)  # a graph that misses
    try:
        widened = 0
        with make_client(search_db, pg_root) as client:
            for q in QUERIES:
                body = {"query": q, "limit": 10, "ef_search": 10, "explain": True}
                got = client.post("/search/semantic", json=body).json()
                exact = client.post("/search/semantic", json={**body, "exact": True}).json()
                best = got["results"][0]["explain"]["distance"]
                assert best <= exact["results"][0]["explain"]["distance"] + MARGIN, q
                widened += bool(got["timings"].get("widened"))
        assert widened >= 1  # the poor graph did miss, and the misses were caught
    finally:
        with psycopg.connect(search_db) as conn:
            hnsw.build(conn)
