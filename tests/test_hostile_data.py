"""Hostile catalog *data*: the values real catalogs hold, not hostile requests.

A generated catalog is damaged, seeded and repeatably: every nullable source column is NULL
or empty for a random share of products, and elsewhere the odd values real feeds carry
(prices of 0 and the column's maximum, one-character and 2,000-character names, names of
digits only, emoji, mixed scripts, markup, one name shared by many products). Embed and the
watch worker keep every row or count it with its reason; every endpoint with every query
kind answers 200 or a documented 4xx, never a 5xx. The same holds for a catalog imported
with only the id and name columns.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from prodsearch.catalog import generate
from prodsearch.catalog.importer import import_file
from prodsearch.catalog.source import load_source
from prodsearch.config import Settings
from prodsearch.db.names import DEMO_CATALOG, EMBEDDINGS_NAME
from prodsearch.embedding.sync import SyncOptions, sync
from prodsearch.watch import capture
from prodsearch.watch.worker import WatchOptions, Worker
from tests.helpers import default_source
from tests.test_api import make_client

SEED = 3030
PRODUCTS = 700
NULL_SHARE = 0.3  # of products, per nullable column
# the nullable columns of the demo catalog and what "empty" means for each
NULLABLE_TEXT = (
    "sku",
    "part_number",
    "polish_name",
    "description",
    "polish_description",
    "category",
    "category_path",
    "brand",
    "vehicle",
    "engine",
    "position",
)
NULLABLE_OTHER = ("price", "stock_qty")
MAX_PRICE = "9999999999.99"  # NUMERIC(12, 2)
ODD_NAMES = (
    "x",
    "7",
    "0000000000",
    "12345 67890",
    "🔧🔩🚗",
    "Klocki 🚗 brake pads 刹车片 Тормозные колодки",
    "<script>alert(1)</script> & <b>bold</b>",
    "&amp; &lt; \\ ' \" %s {} %(q)s",
    "Ω≈ç√∫ — … “quoted” ‘single’",
    "ﬁlter ligature and zero​width",
)
DUPLICATE_NAME = "Universal part"
DUPLICATES = 40


def damage(conn: psycopg.Connection[Any], rng: random.Random) -> dict[str, int]:
    """Damage the demo catalog in place; how many products each column lost."""
    ids = [r[0] for r in conn.execute(f"SELECT product_id FROM {DEMO_CATALOG} ORDER BY 1")]
    emptied: dict[str, int] = {}
    for col in (*NULLABLE_TEXT, *NULLABLE_OTHER):
        chosen = rng.sample(ids, int(len(ids) * NULL_SHARE))
        half = len(chosen) // 2
        conn.execute(
            f"UPDATE {DEMO_CATALOG} SET {col} = NULL WHERE product_id = ANY(%s)", (chosen[:half],)
        )
        if col in NULLABLE_TEXT:  # the other half empty, or only spaces
            conn.execute(
                f"UPDATE {DEMO_CATALOG} SET {col} = (ARRAY['', '   '])[1 + product_id %% 2]"
                " WHERE product_id = ANY(%s)",
                (chosen[half:],),
            )
        emptied[col] = len(chosen)
    odd = rng.sample(ids, len(ODD_NAMES) + 6 + DUPLICATES)
    for pid, name in zip(odd, ODD_NAMES, strict=False):
        conn.execute(f"UPDATE {DEMO_CATALOG} SET name = %s WHERE product_id = %s", (name, pid))
    rest = odd[len(ODD_NAMES) :]
    conn.execute(  # the character cap, and past it
        f"UPDATE {DEMO_CATALOG} SET name = repeat('Bremsscheibe disc ', 112) WHERE product_id = %s",
        (rest[0],),
    )
    conn.execute(
        f"UPDATE {DEMO_CATALOG} SET name = repeat('a', 5000), description = repeat('ż', 9000)"
        " WHERE product_id = %s",
        (rest[1],),
    )
    conn.execute(f"UPDATE {DEMO_CATALOG} SET price = 0 WHERE product_id = %s", (rest[2],))
    conn.execute(f"UPDATE {DEMO_CATALOG} SET price = {MAX_PRICE} WHERE product_id = %s", (rest[3],))
    conn.execute(  # a vehicle and an engine that are not what the parser expects
        f"UPDATE {DEMO_CATALOG} SET vehicle = '🚗', engine = '?', position = '—'"
        " WHERE product_id = %s",
        (rest[4],),
    )
    conn.execute(
        f"UPDATE {DEMO_CATALOG} SET vehicle = 'Golf', brand = 'Ö' WHERE product_id = %s",
        (rest[5],),
    )
    conn.execute(
        f"UPDATE {DEMO_CATALOG} SET name = %s WHERE product_id = ANY(%s)",
        (DUPLICATE_NAME, rest[6:]),
    )
    conn.commit()
    return emptied


def catalog_values(conn: psycopg.Connection[Any], column: str, n: int) -> list[str]:
    rows = conn.execute(
        f"SELECT DISTINCT {column} FROM {DEMO_CATALOG} WHERE {column} IS NOT NULL"
        f" AND btrim({column}) <> '' ORDER BY 1 LIMIT %s",
        (n,),
    )
    return [r[0] for r in rows]


def queries_of(conn: psycopg.Connection[Any], rng: random.Random) -> list[str]:
    """Every query kind, built from the damaged catalog's own values."""
    vehicles = catalog_values(conn, "vehicle", 200)
    categories = catalog_values(conn, "category", 100)
    codes = catalog_values(conn, "part_number", 200) + catalog_values(conn, "sku", 200)
    polish = catalog_values(conn, "polish_name", 300)
    out = [
        "brake pads",
        "klocki hamulcowe",
        "sprezyna zawieszenia",
        "amortyzatory przód",
        "wahacz",
        "olej silnikowy 5w30",
        "wiper blade",
        DUPLICATE_NAME,
        *ODD_NAMES,
    ]
    for v in rng.sample(vehicles, min(12, len(vehicles))):
        words = [*v.split(), v][:3]  # "🚗" and "Golf" too
        out.append(f"{rng.choice(categories)} {' '.join(words[1:])}")  # "control arm golf vii"
        out.append(f"{rng.choice(categories).lower()} do {words[1].lower()}a")
    out += [rng.choice(codes) for _ in range(8)]
    out += [c.replace(" ", "").replace("-", "") for c in rng.sample(codes, 4)]
    out += [p.lower() for p in rng.sample(polish, 6)]
    # constraints typed in the query (search.constraints), some that nothing meets
    out += [
        "klocki hamulcowe do 100 zł",
        "tylne amortyzatory bosch 2.0 tdi",
        "wahacz lemforder przód lewy under 50",
        "alternator over 99999999999",
        "brake pads under 0 zl",
        "under 40",
        "oil filter under " + "9" * 40,
        "🔧 do 7 zł",
    ]
    return out


FILTERS: list[dict[str, Any]] = [
    {"price_max": 0},
    {"price_min": 0, "price_max": 0},
    {"price_min": float(MAX_PRICE)},
    {"price_max": 1e15},
    {"in_stock": True},
    {"in_stock": False, "price_max": 40},
    {"brand": ""},
    {"brand": ["Ö", "Bosch"]},
    {"category": ""},
    {"category": "Brake Pads", "price_max": 150},
]


class Tally:
    """Every request and its status: the test's report."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.statuses: Counter[int] = Counter()
        self.failures: list[str] = []

    def __call__(self, method: str, path: str, **kwargs: Any) -> Any:
        res = self.client.request(method, path, **kwargs)
        self.statuses[res.status_code] += 1
        if res.status_code >= 500:
            self.failures.append(f"{method} {path} {kwargs} -> {res.status_code} {res.text}")
        elif res.status_code == 200 and path.startswith("/search/") and "results" in res.text:
            body = res.json()
            for hit in body["results"]:
                assert math.isfinite(hit["score"]), (path, kwargs, hit)
        else:
            assert res.status_code in (200, 404, 422), (method, path, kwargs, res.text)
        return res

    @property
    def requests(self) -> int:
        return sum(self.statuses.values())


def exercise(tally: Tally, queries: list[str], product_ids: list[int]) -> None:
    """Every endpoint with every query kind."""
    for i, q in enumerate(queries):
        body = {"query": q, "limit": 10}
        tally("POST", "/search/semantic", json=body)
        tally("POST", "/search/hybrid", json={**body, "explain": True, "facets": True})
        tally("POST", "/search/semantic", json={**body, "explain": True, "facets": True})
        tally("POST", "/search/filtered", json={**body, "filters": FILTERS[i % len(FILTERS)]})
        tally("POST", "/search/hybrid", json={**body, "filters": FILTERS[(i + 3) % len(FILTERS)]})
        if i % 5 == 0:
            tally("POST", "/search/semantic", json={**body, "exact": True, "offset": 5})
    for f in FILTERS:
        tally("POST", "/search/filtered", json={"query": "part", "filters": f, "facets": True})
    for pid in product_ids:
        tally("GET", f"/search/similar/{pid}", params={"limit": 10, "explain": True})
        tally("GET", f"/search/similar/{pid}", params={"facets": True, "exact": True})
    for path in ("/search/filters", "/health", "/metrics", "/"):
        tally("GET", path)


@pytest.fixture()
def hostile(
    conn: psycopg.Connection[Any], settings: Settings, encoders: dict[str, Any]
) -> Iterator[tuple[dict[str, int], random.Random]]:
    generate.load(conn, PRODUCTS, seed=SEED)
    rng = random.Random(SEED)
    yield damage(conn, rng), rng


def _live(conn: psycopg.Connection[Any]) -> int:
    (n,) = conn.execute(f"SELECT count(*) FROM {DEMO_CATALOG} WHERE NOT is_deleted").fetchone()
    return int(n)


def _embedded(conn: psycopg.Connection[Any]) -> int:
    (n,) = conn.execute(f"SELECT count(*) FROM {EMBEDDINGS_NAME}").fetchone()
    conn.commit()
    return int(n)


def test_a_product_without_a_vehicle_ranks_by_distance_alone(search_db: str, pg_root: Path) -> None:
    """A NULL vehicle beside a query that names one."""
    with psycopg.connect(search_db) as c:
        pid, vehicle, category = c.execute(
            f"SELECT product_id, vehicle, category FROM {DEMO_CATALOG}"
            " WHERE vehicle IS NOT NULL AND NOT is_deleted ORDER BY product_id LIMIT 1"
        ).fetchone()
        query = f"{category} {' '.join(vehicle.split()[1:])}"
        c.execute(f"UPDATE {DEMO_CATALOG} SET vehicle = NULL WHERE product_id = %s", (pid,))
        c.commit()
        try:
            with make_client(search_db, pg_root) as client:
                res = client.post(
                    "/search/semantic", json={"query": query, "limit": 50, "explain": True}
                )
                assert res.status_code == 200, res.text
                body = res.json()
                assert body["explain"]["vehicles"], body["explain"]  # the query names one
                hits = {h["product_id"]: h for h in body["results"]}
                assert pid in hits, (query, list(hits))  # its own category and vehicle words
                mine = hits[pid]["explain"]
                assert mine["vehicle_match"] == 0
                assert hits[pid]["score"] == pytest.approx(1 - mine["distance"], abs=1e-5)
                boosted = [h for h in body["results"] if h["explain"]["vehicle_match"] == 1]
                assert boosted and all(
                    h["score"] == pytest.approx(1 - h["explain"]["distance"] + 0.05, abs=1e-5)
                    for h in boosted
                )
                hybrid = client.post("/search/hybrid", json={"query": query, "limit": 50})
                assert hybrid.status_code == 200, hybrid.text
        finally:
            c.execute(
                f"UPDATE {DEMO_CATALOG} SET vehicle = %s WHERE product_id = %s", (vehicle, pid)
            )
            c.commit()


def test_hostile_catalog_data_never_fails_a_request(
    conn: psycopg.Connection[Any],
    settings: Settings,
    db_url: str,
    tmp_path: Path,
    encoders: dict[str, Any],
    hostile: tuple[dict[str, int], random.Random],
    capsys: pytest.CaptureFixture[str],
) -> None:
    emptied, rng = hostile
    enc = encoders["int8"]
    result = sync(settings, SyncOptions(mode="int8"), encoder=enc)
    assert result.status == "succeeded"
    # every live product embedded, or counted as without text (none here: every row has
    # a name, and the name is embedded)
    assert result.eligible == _live(conn)
    assert result.written + result.failed == result.eligible and result.failed == 0, result
    assert _embedded(conn) == result.eligible

    queries = queries_of(conn, rng)
    odd_ids = [
        r[0]
        for r in conn.execute(
            f"SELECT product_id FROM {DEMO_CATALOG} WHERE NOT is_deleted AND (vehicle IS NULL"
            " OR brand IS NULL OR price IS NULL OR category IS NULL OR length(name) < 3"
            " OR name = %s) ORDER BY product_id LIMIT 40",
            (DUPLICATE_NAME,),
        )
    ]
    conn.commit()
    with make_client(db_url, tmp_path) as client:
        tally = Tally(client)
        exercise(tally, queries, [*odd_ids, 1, -5])

        # continuous sync of more damage: new products without anything but a name, names
        # emptied (no text left: counted, not embedded), odd names
        capture.install(conn, load_source(conn, settings), settings)
        conn.execute(
            f"INSERT INTO {DEMO_CATALOG} (product_id, name) SELECT 990000 + g, %s"
            " FROM generate_series(1, 30) AS g",
            ("Żarówka H7 🚗",),
        )
        live = [
            r[0]
            for r in conn.execute(
                f"SELECT product_id FROM {DEMO_CATALOG} WHERE NOT is_deleted AND product_id"
                " < 990000 ORDER BY product_id LIMIT 20"
            )
        ]
        conn.execute(
            f"UPDATE {DEMO_CATALOG} SET name = ' ', description = NULL WHERE product_id = ANY(%s)",
            (live[:5],),
        )
        conn.execute(
            f"UPDATE {DEMO_CATALOG} SET name = %s, vehicle = NULL, brand = NULL"
            " WHERE product_id = ANY(%s)",
            (ODD_NAMES[5], live[5:]),
        )
        conn.commit()
        totals = Worker(
            settings,
            WatchOptions.from_settings(settings, nice=0, once=True, reconcile_s=0),
            encoder=enc,
        ).run()
        assert totals.taken == 30 + 20 and totals.errors == 0, totals
        assert totals.written == 30 + 15 and totals.without_text == 5, totals
        exercise(tally, [*queries, "żarówka h7", "zarowka"], [990001, *live])

    report = (
        f"hostile catalog data: {tally.requests} requests, {tally.statuses.get(200, 0)} x 200, "
        f"{sum(n for s, n in tally.statuses.items() if 400 <= s < 500)} x 4xx, "
        f"{sum(n for s, n in tally.statuses.items() if s >= 500)} x 5xx "
        f"({len(queries)} queries; columns emptied: {emptied})"
    )
    with capsys.disabled():
        print("\n" + report)
    assert not tally.failures, "\n".join(tally.failures[:5])
    assert tally.requests > 500 and tally.statuses[200] > 0.9 * tally.requests, report


def test_a_catalog_of_only_ids_and_names(
    conn: psycopg.Connection[Any],
    settings: Settings,
    db_url: str,
    tmp_path: Path,
    encoders: dict[str, Any],
) -> None:
    rng = random.Random(SEED + 1)
    names = [row[3] for row in generate.rows(300, seed=SEED)]
    feed = tmp_path / "names.csv"
    with feed.open("w", encoding="utf-8") as f:
        f.write("product_id,name\n")
        for i, name in enumerate(names):
            f.write(f'{i + 1},"{name.replace(chr(34), chr(34) * 2)}"\n')
        f.write('9001,"🔧"\n9002,"1"\n')
    summary = import_file(conn, feed, default_source(conn))
    assert summary.balanced and summary.inserted == len(names) + 2, summary
    result = sync(settings, SyncOptions(mode="int8"), encoder=encoders["int8"])
    assert result.written == len(names) + 2 and result.failed == 0, result
    queries = ["brake pads", "klocki", "golf 7 wahacz", "do 100 zł", "🔧", "1"]
    queries += [n.lower() for n in rng.sample(names, 10)]
    with make_client(db_url, tmp_path) as client:
        tally = Tally(client)
        exercise(tally, queries, [1, 9001, 9002, 77777])
    assert not tally.failures, "\n".join(tally.failures[:5])
    assert tally.statuses[200] > 0.9 * tally.requests
