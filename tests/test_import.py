"""Importers lose nothing — every row is stored or rejected with a reason."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from prodsearch.catalog.importer import import_file, parse_mapping
from prodsearch.db.names import DEMO_CATALOG
from prodsearch.errors import ProdsearchError
from tests.conftest import run_cli
from tests.helpers import default_source

HEADER = b"id,title,description,price,stock_qty,brand,extra\n"
GOOD = [
    b"1,Bosch brake pads front,Ceramic pads,149.99,5,Bosch,x\n",
    b'2,"Klocki hamulcowe, tylne","Opis ""PL""",\'12,50\',0,ATE,y\n'.replace(b"'", b'"'),
    b"3,<b>Mann oil filter</b>,,35,,Mann-Filter,\n",
    b'4,Wiper blade,"multi\nline description",1 234,50,2,Valeo,\n'.replace(
        b"1 234,50", b'"1 234,50"'
    ),
]
BAD = {
    b",No id here,d,10,1,B,\n": "missing product_id",
    b"abc,Bad id,d,10,1,B,\n": "product_id is not an integer",
    b"5,  <br/> \xe2\x80\x8b ,d,10,1,B,\n": "empty name after cleaning",
    b"6,Bad price,d,ten zloty,1,B,\n": "price is not a number",
    b"7,Bad \xff\xfe utf8,d,10,1,B,\n": "invalid UTF-8 in title",
    b"1,Duplicate of line 2,d,10,1,B,\n": "duplicate product_id 1 (first on line 2)",
    b"8,Bad stock,d,10,lots,B,\n": "stock_qty is not an integer",
    b"9,Too few fields\n": "expected 7 fields, found 2",
}
MAP = ["product_id=id", "name=title"]


def _write_csv(path: Path) -> Path:
    path.write_bytes(HEADER + b"".join(GOOD) + b"".join(BAD))
    return path


def _rejects(path: Path) -> list[dict[str, Any]]:
    rej = path.with_name(path.name + ".rejects.jsonl")
    return [json.loads(line) for line in rej.read_text(encoding="utf-8").splitlines()]


def test_csv_with_every_kind_of_bad_row(conn: psycopg.Connection[Any], tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "catalog.csv")
    summary = import_file(
        conn, path, default_source(conn), mapping=parse_mapping(MAP), chunk_size=2
    )
    assert summary.read == len(GOOD) + len(BAD)
    assert (summary.inserted, summary.updated, summary.unchanged) == (4, 0, 0)
    assert summary.rejected == len(BAD)
    assert summary.balanced
    assert summary.ignored_columns == ["extra"]
    rejects = _rejects(path)
    assert [r["reason"].split(":")[0] for r in rejects] == [
        reason.split(":")[0] for reason in BAD.values()
    ]
    # line numbers: header is line 1, the multi-line record spans lines 5-6
    assert [r["line"] for r in rejects] == list(range(7, 7 + len(BAD)))
    assert rejects[0]["row"]["title"] == "No id here"
    rows = {
        r[0]: r[1:]
        for r in conn.execute(
            "SELECT product_id, name, price, stock_qty, in_stock, brand "
            f"FROM {DEMO_CATALOG} ORDER BY 1"
        ).fetchall()
    }
    assert set(rows) == {1, 2, 3, 4}
    assert rows[2][0] == "Klocki hamulcowe, tylne"
    assert str(rows[2][1]) == "12.50" and rows[2][3] is False
    assert str(rows[4][1]) == "1234.50" and rows[4][3] is True
    assert rows[3][0] == "<b>Mann oil filter</b>"  # stored as given; cleaned when embedded
    assert (str(rows[3][1]), rows[3][2], rows[3][3]) == ("35.00", None, False)
    (desc,) = conn.execute(
        f"SELECT description FROM {DEMO_CATALOG} WHERE product_id = 4"
    ).fetchone()
    assert desc == "multi\nline description"


def test_reimport_is_unchanged_then_updates(conn: psycopg.Connection[Any], tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "catalog.csv")
    mapping = parse_mapping(MAP)
    import_file(conn, path, default_source(conn), mapping=mapping)
    (stamp,) = conn.execute(
        f"SELECT updated_at FROM {DEMO_CATALOG} WHERE product_id = 1"
    ).fetchone()
    again = import_file(conn, path, default_source(conn), mapping=mapping)
    assert (again.inserted, again.updated, again.unchanged, again.rejected) == (0, 0, 4, len(BAD))
    path.write_bytes(HEADER + GOOD[0].replace(b"149.99", b"139.99") + GOOD[1])
    third = import_file(conn, path, default_source(conn), mapping=mapping)
    assert (third.inserted, third.updated, third.unchanged, third.rejected) == (0, 1, 1, 0)
    assert third.rejects_path is None
    assert not path.with_name(path.name + ".rejects.jsonl").exists()
    (price, new_stamp) = conn.execute(
        f"SELECT price, updated_at FROM {DEMO_CATALOG} WHERE product_id = 1"
    ).fetchone()
    assert str(price) == "139.99" and new_stamp > stamp


def test_jsonl_and_parquet(conn: psycopg.Connection[Any], tmp_path: Path) -> None:
    jsonl = tmp_path / "items.jsonl"
    jsonl.write_bytes(
        b'{"product_id": 10, "name": "Spark plug", "price": 32.5, "in_stock": "yes"}\n'
        b"\n"
        b'{"product_id": 11, "name": "Glow plug", "is_deleted": true}\n'
        b"{not json}\n"
        b'{"product_id": 12, "name": "Bad \xff"}\n'
        b"[1, 2]\n"
        b'{"product_id": 13}\n'
        b'{"product_id": 14, "name": "Bad bool", "in_stock": "maybe"}\n'
        b'{"product_id": 15.5, "name": "Bad id"}\n'
    )
    s = import_file(conn, jsonl, default_source(conn))
    assert (s.read, s.inserted, s.rejected) == (8, 2, 6) and s.balanced
    reasons = [r["reason"].split(":")[0] for r in _rejects(jsonl)]
    assert reasons == [
        "invalid JSON",
        "invalid UTF-8 (invalid start byte)",
        "not a JSON object",
        "missing name",
        "in_stock is not a boolean",
        "product_id is not an integer",
    ]
    assert [r["line"] for r in _rejects(jsonl)] == [4, 5, 6, 7, 8, 9]

    table = pa.table(
        {
            "sku_id": pa.array([20, 21, None], pa.int64()),
            "title": ["Radiator", "Thermostat", "No id"],
            "cost": ["460.00", "bad", "1"],
        }
    )
    parquet = tmp_path / "items.parquet"
    pq.write_table(table, parquet)
    s = import_file(
        conn,
        parquet,
        default_source(conn),
        mapping=parse_mapping(["product_id=sku_id", "name=title", "price=cost"]),
    )
    assert (s.read, s.inserted, s.rejected) == (3, 1, 2) and s.balanced
    (n,) = conn.execute(
        f"SELECT count(*) FROM {DEMO_CATALOG} WHERE product_id IN (10, 11, 20)"
    ).fetchone()
    assert n == 3


def test_bad_arguments_are_clear(conn: psycopg.Connection[Any], tmp_path: Path) -> None:
    with pytest.raises(ProdsearchError, match="TARGET=SOURCE"):
        parse_mapping(["name"])
    feed = _write_csv(tmp_path / "feed.csv")
    with pytest.raises(ProdsearchError, match="not a catalog column"):
        import_file(conn, feed, default_source(conn), mapping=parse_mapping(["titel=title"]))
    odd = tmp_path / "items.xlsx"
    odd.write_text("x")
    with pytest.raises(ProdsearchError, match="--format"):
        import_file(conn, odd, default_source(conn))
    with pytest.raises(ProdsearchError, match="no such file"):
        import_file(conn, tmp_path / "missing.csv", default_source(conn))


def test_cli_import_prints_summary_and_rejects(db_url: str, tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "feed.csv")
    env = {"DATABASE_URL": db_url, "PRODSEARCH_HOME": str(tmp_path / "home")}
    command = ("catalog", "import", str(path), "--map", "product_id=id", "--map", "name=title")
    res = run_cli(*command, "--json", env=env)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert data["read"] == data["inserted"] + data["updated"] + data["unchanged"] + data["rejected"]
    assert data["rejected"] == len(BAD) and data["rejects_path"].endswith("feed.csv.rejects.jsonl")
    res = run_cli(*command, env=env)
    assert "rejected 1: missing product_id" in res.stdout
    again = run_cli(*command, "--json", env=env)
    counts = json.loads(again.stdout)
    assert (counts["inserted"], counts["updated"]) == (0, 0)
    assert counts["unchanged"] == data["inserted"] + data["updated"] > 0


def test_large_file_streams_in_bounded_memory(
    conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    import tracemalloc

    path = tmp_path / "big.csv"
    filler = "Long description of a very good product. " * 25  # ~1 KB a row
    with path.open("w", encoding="utf-8") as fh:
        fh.write("product_id,name,description\n")
        for i in range(1, 40_001):
            fh.write(f"{i},Product {i},{filler}\n")
    size = path.stat().st_size
    assert size > 40_000_000
    tracemalloc.start()
    try:
        summary = import_file(conn, path, default_source(conn), chunk_size=2000)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert summary.inserted == 40_000 and summary.balanced
    assert peak < size / 3, f"peak {peak:,} bytes for a {size:,}-byte file"


def test_configured_source_table_end_to_end(db_url: str, pg_root: Path, tmp_path: Path) -> None:
    """Import → embed → search → status against a table of another name, other column
    names and a ``deleted_at IS NOT NULL`` soft delete: every step uses the configured
    source, and the demo table is never read or written."""
    with psycopg.connect(db_url) as conn:
        conn.execute("CREATE SCHEMA shop")
        conn.execute(
            'CREATE TABLE shop."Parts List" (item_id bigint PRIMARY KEY, title text NOT NULL, '
            "body text, kind text, cost numeric(10, 2), weight_kg real, "
            "deleted_at timestamptz, updated_at timestamptz)"
        )
        conn.execute(f"INSERT INTO {DEMO_CATALOG} (product_id, name) VALUES (1, 'x')")
    feed = tmp_path / "parts.csv"
    feed.write_text(
        "id,title,body,kind,cost,weight_kg,deleted_at\n"
        "1,Ceramic brake pads front,Low dust pads for the front axle,brakes,120.50,1.2,\n"
        "2,Oil filter,Spin-on engine oil filter,filters,25,-0.1,\n"
        "3,Spark plug iridium,Long-life iridium spark plug,ignition,30,0.05,\n"
        "4,Brake disc vented,Vented front brake disc,brakes,210,6.5,2026-01-02T03:04:05+00:00\n"
        "5,Air filter,,filters,abc,0.3,\n"
        "6,Wiper blade,Flat wiper blade,wipers,15,0.2,yesterday\n"
        ",No id,,,1,,\n",
        encoding="utf-8",
    )
    env = {
        "DATABASE_URL": db_url,
        "PRODSEARCH_HOME": str(pg_root),
        "PRODSEARCH_SOURCE_TABLE": "shop.Parts List",
        "PRODSEARCH_SOURCE_ID_COLUMN": "item_id",
        "PRODSEARCH_TEXT_FIELDS": "title,body",
        "PRODSEARCH_FILTER_COLUMNS": "kind,cost",
        "PRODSEARCH_SOURCE_DELETED": "deleted_at IS NOT NULL",
        "PRODSEARCH_MODE": "int8",
    }
    res = run_cli("demo", "--no-serve", env=env)  # nothing to demo in an empty own table
    assert res.returncode != 0 and "shop.Parts List (PRODSEARCH_SOURCE_TABLE) is empty" in (
        res.stdout + res.stderr
    )
    res = run_cli("catalog", "import", str(feed), "--map", "item_id=id", "--json", env=env)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout)
    assert (summary["read"], summary["inserted"], summary["rejected"]) == (7, 4, 3)
    reasons = summary["reasons"]
    assert set(reasons) == {
        "cost is not a number",
        "deleted_at is not an ISO 8601 date or timestamp",
        "missing item_id",
    }
    with psycopg.connect(db_url) as conn:
        rows = conn.execute(
            "SELECT item_id, cost, weight_kg, deleted_at IS NOT NULL, updated_at IS NOT NULL "
            'FROM shop."Parts List" ORDER BY 1'
        ).fetchall()
        assert [r[0] for r in rows] == [1, 2, 3, 4] and all(r[4] for r in rows)
        assert float(rows[1][2]) == pytest.approx(-0.1) and [r[3] for r in rows] == [
            False,
            False,
            False,
            True,
        ]
        (demo,) = conn.execute(f"SELECT count(*) FROM {DEMO_CATALOG}").fetchone()
        assert demo == 1  # untouched
    res = run_cli("embed", "--json", env=env)
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["embedded"] == 3  # the deleted product is not embedded
    res = run_cli("search", "brake pads", "--json", env=env)
    assert res.returncode == 0, res.stderr
    ids = [r["product_id"] for r in json.loads(res.stdout)["results"]]
    assert ids[0] == 1 and 4 not in ids and set(ids) <= {1, 2, 3}
    res = run_cli(
        "search", "filter", "--mode", "filtered", "--filter", "kind=filters", "--json", env=env
    )
    assert [r["product_id"] for r in json.loads(res.stdout)["results"]] == [2]
    res = run_cli("status", "--json", env=env)
    assert res.returncode == 0, res.stderr
    status = json.loads(res.stdout)
    assert (status["eligible_products"], status["embeddings"]) == (3, 3)
