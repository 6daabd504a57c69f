"""API hardening and injection safety, on the real database and model.

Every value a caller controls (query text, filter keys and values, product ids, paging,
configured identifiers and predicates) reaches SQL as a bound parameter or a quoted
identifier, or is refused with a clear message: after every attempt below the schema
and the data are byte-for-byte what they were.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from prodsearch.db.names import DEMO_CATALOG, DEMO_CATALOG_SCHEMA, EMBEDDINGS_NAME, SCHEMA
from tests.conftest import run_cli
from tests.test_api import make_client

INJECTIONS = [
    f"'; DROP TABLE {DEMO_CATALOG}; --",
    '"; DROP SCHEMA analytics_features CASCADE; --',
    "1 OR 1=1",
    "x') UNION SELECT usename, passwd FROM pg_shadow --",
    f"$$; DELETE FROM {EMBEDDINGS_NAME}; $$",
    f"brake\\'; TRUNCATE {DEMO_CATALOG}; --",
]
LEAKS = ("Traceback", "SELECT ", "psycopg", 'File "', f"{SCHEMA}.", f"{DEMO_CATALOG_SCHEMA}.")


def _fingerprint(url: str) -> tuple[Any, ...]:
    """The schema (every relation and column) and the data (row counts and checksums)."""
    with psycopg.connect(url) as c:
        columns = c.execute(
            "SELECT table_schema, table_name, column_name, data_type "
            "FROM information_schema.columns "
            "WHERE table_schema IN (%s, %s) ORDER BY 1, 2, 3",
            (DEMO_CATALOG_SCHEMA, SCHEMA),
        ).fetchall()
        data = c.execute(
            f"SELECT (SELECT count(*) FROM {DEMO_CATALOG}), "
            "(SELECT md5(string_agg(p::text, '' ORDER BY product_id)) "
            f" FROM {DEMO_CATALOG} AS p), "
            f"(SELECT count(*) FROM {EMBEDDINGS_NAME}), "
            "(SELECT md5(string_agg(embedding_md5 || content_hash, '' ORDER BY product_id)) "
            f" FROM {EMBEDDINGS_NAME})"
        ).fetchone()
    return tuple(columns), data


def _no_leak(res: Any) -> None:
    assert res.status_code < 500, res.text
    if res.status_code >= 400:
        assert set(res.json()) <= {"error", "detail"}, res.text
        said = str(res.json())
        for echoed in INJECTIONS:  # naming the caller's own bad value back is fine
            said = said.replace(echoed, "").replace(repr(echoed)[1:-1], "")
        assert not any(leak in said for leak in LEAKS), res.text


def test_injection_in_every_field_changes_nothing(search_db: str, pg_root: Path) -> None:
    before = _fingerprint(search_db)
    with make_client(search_db, pg_root) as c:
        for bad in INJECTIONS:
            for path in ("/search/semantic", "/search/hybrid", "/search/filtered"):
                _no_leak(c.post(path, json={"query": bad, "limit": 5}))
            for filters in (
                {"category": bad},
                {"brand": [bad, "Bosch"]},
                {bad: "x"},
                {"price_max": bad},
                {"in_stock": bad},
            ):
                _no_leak(c.post("/search/filtered", json={"query": "pads", "filters": filters}))
                _no_leak(c.post("/search/hybrid", json={"query": "pads", "filters": filters}))
            _no_leak(c.get(f"/search/similar/{bad}"))
            _no_leak(c.get("/search/similar/1", params={"limit": bad, "ef_search": bad}))
            _no_leak(c.post("/search/semantic", json={"query": "pads", "limit": bad}))
    # configured identifiers and the delete predicate: refused before any SQL runs
    env = {"DATABASE_URL": search_db, "PRODSEARCH_HOME": str(pg_root), "PRODSEARCH_MODE": "int8"}
    for name, value in (
        ("PRODSEARCH_SOURCE_TABLE", f"{DEMO_CATALOG}; DROP TABLE x"),
        ("PRODSEARCH_SOURCE_ID_COLUMN", "product_id; DROP TABLE x"),
        ("PRODSEARCH_SOURCE_DELETED", f"is_deleted OR true; DELETE FROM {DEMO_CATALOG}"),
        ("PRODSEARCH_FILTER_COLUMNS", 'category,brand"; DROP TABLE x; --'),
    ):
        res = run_cli("search", "brake pads", "--limit", "3", env={**env, name: value})
        assert res.returncode != 0 or "DROP" not in res.stdout, (name, res.stdout)
        assert "Traceback" not in res.stderr, (name, res.stderr[-2000:])
    assert _fingerprint(search_db) == before


def test_body_size_limit_is_413(search_db: str, pg_root: Path) -> None:
    big = {"query": "brake pads", "filters": {"brand": ["x" * 100] * 700}}  # ~72 KB
    with make_client(search_db, pg_root) as c:  # default limit: 64 KB
        res = c.post("/search/filtered", json=big)
        assert res.status_code == 413 and "65536" in res.json()["error"]
        assert c.post("/search/semantic", json={"query": "brake pads"}).status_code == 200
    with make_client(search_db, pg_root, max_body_bytes=2048) as c:

        def streamed() -> Any:  # no Content-Length: the limit counts what arrives
            yield b'{"query": "'
            yield b"x" * 4000
            yield b'"}'

        res = c.post(
            "/search/semantic", content=streamed(), headers={"content-type": "application/json"}
        )
        assert res.status_code == 413


def test_cors_is_off_unless_configured(search_db: str, pg_root: Path) -> None:
    preflight = {"Origin": "https://shop.example", "Access-Control-Request-Method": "POST"}
    with make_client(search_db, pg_root) as c:
        res = c.options("/search/semantic", headers=preflight)
        assert "access-control-allow-origin" not in res.headers
        res = c.post("/search/semantic", json={"query": "pads"}, headers={"Origin": "https://x"})
        assert "access-control-allow-origin" not in res.headers
    with make_client(search_db, pg_root, cors_origins="https://shop.example") as c:
        res = c.options("/search/semantic", headers=preflight)
        assert res.headers["access-control-allow-origin"] == "https://shop.example"
        evil = {**preflight, "Origin": "https://evil.example"}
        res = c.options("/search/semantic", headers=evil)
        assert res.headers.get("access-control-allow-origin") != "https://evil.example"


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe not json",
        b'{"query": "\\udafc"}',
        b'{"query": "\\u0000"}',
        b'{"query": "pads", "filters": {"category": "a\\u0000b"}}',
        b'{"query": "pads", "limit": 1e400}',
        b'{"query": "pads", "offset": -1}',
        b"[" * 5000 + b"]" * 5000,
        b'{"query": "pads", "filters": {"price_max": NaN}}',
    ],
)
def test_hostile_bodies_get_clear_errors(search_db: str, pg_root: Path, body: bytes) -> None:
    with make_client(search_db, pg_root) as c:
        for path in ("/search/semantic", "/search/hybrid", "/search/filtered"):
            res = c.post(path, content=body, headers={"content-type": "application/json"})
            assert res.status_code in (200, 400, 422), (path, res.status_code, res.text)
            _no_leak(res)
            if res.status_code != 200:
                assert res.json()["error"].strip()
