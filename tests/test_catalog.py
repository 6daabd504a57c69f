"""Demo catalog generator, stats, any-source-table configuration."""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg
import pytest

from prodsearch.catalog import generate
from prodsearch.catalog.source import Source, load_source
from prodsearch.catalog.stats import catalog_stats
from prodsearch.config import Settings
from prodsearch.errors import ConfigError
from tests.conftest import run_cli

SEED_COVERAGE = {
    "name": 100.0,
    "polish_name": 88.0,
    "description": 71.0,
    "polish_description": 56.0,
}


def test_generated_catalog_matches_seed_coverage(
    conn: psycopg.Connection[Any], settings: Settings
) -> None:
    generate.load(conn, 20_000, seed=7)
    stats = catalog_stats(conn, load_source(conn, settings))
    assert stats.total == 20_000
    assert 0.005 * 20_000 < stats.deleted < 0.03 * 20_000
    got = {c.field: c.percent for c in stats.coverage}
    for field, expected in SEED_COVERAGE.items():
        assert abs(got[field] - expected) <= 2.0, (field, got[field])


def test_generator_is_deterministic_and_realistic() -> None:
    first = list(generate.rows(3000, seed=1))
    assert first == list(generate.rows(3000, seed=1))
    assert first != list(generate.rows(3000, seed=2))
    ids = [r[0] for r in first]
    assert len(set(ids)) == len(ids)
    cols = generate.COLUMNS
    by = [dict(zip(cols, r, strict=True)) for r in first]
    assert len({r["category"] for r in by}) >= 30
    assert len({r["brand"] for r in by}) >= 35
    assert all(" > " in r["category_path"] for r in by)
    # real Polish, with diacritics and Polish words, not English with a suffix
    polish = [r["polish_name"] for r in by if r["polish_name"]]
    assert sum(bool(re.search(r"[ąćęłńóśźż]", p)) for p in polish) > 0.3 * len(polish)
    assert all(" do " in p for p in polish)
    assert any(p.startswith("Klocki hamulcowe") for p in polish)
    # descriptions: empty to several hundred words, long tail
    words = sorted(len((r["description"] or "").split()) for r in by)
    assert words[0] == 0 and words[len(words) // 2] < 80 and words[-1] > 300
    # exact duplicate texts across variants
    texts = Counter((r["name"], r["description"]) for r in by)
    assert sum(n - 1 for n in texts.values() if n > 1) > 0.01 * len(by)
    # prices and stock
    assert all(r["price"] > 0 for r in by)
    assert any(not r["in_stock"] for r in by) and any(r["in_stock"] for r in by)


def test_cli_generate_and_stats(db_url: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": db_url, "PRODSEARCH_HOME": str(tmp_path)}
    res = run_cli("catalog", "generate", "--products", "5000", env=env)
    assert res.returncode == 0, res.stderr
    assert "generated 5,000 products" in res.stdout
    res = run_cli("catalog", "stats", env=env)
    assert res.returncode == 0, res.stderr
    for header in ("Field", "Coverage", "Percentage", "polish_description", "total: 5,000"):
        assert header in res.stdout
    data = json.loads(run_cli("catalog", "stats", "--json", env=env).stdout)
    assert data["total"] == 5000 and data["coverage"]["name"]["percent"] == 100.0


def test_wrong_source_names_list_what_exists(conn: psycopg.Connection[Any]) -> None:
    with pytest.raises(ConfigError, match=r"tables found: .*staging_marts\.dim_product"):
        load_source(conn, Settings(source_table="staging_marts.nope"))
    with pytest.raises(ConfigError, match=r"no text column .*titel.*columns are: product_id, sku"):
        load_source(conn, Settings(text_fields="name,titel"))
    with pytest.raises(ConfigError, match="not understood"):
        load_source(conn, Settings(source_deleted="is_deleted; drop table x"))


def test_any_source_table_with_deleted_at_predicate(conn: psycopg.Connection[Any]) -> None:
    conn.execute(
        'CREATE TABLE public."My Items" (id bigint primary key, title text, body text, '
        "deleted_at timestamptz, colour text)"
    )
    conn.execute(
        """INSERT INTO public."My Items" VALUES (1, 'Red pads', 'x', NULL, 'red'),
        (2, 'Blue disc', NULL, now(), 'blue'), (3, 'Green hose', '', NULL, 'green')"""
    )
    settings = Settings(
        source_table="public.My Items",
        source_id_column="id",
        text_fields="title,body",
        source_deleted="deleted_at IS NOT NULL",
        filter_columns="colour",
    )
    source = load_source(conn, settings)
    assert isinstance(source, Source) and source.columns["colour"] == "text"
    stats = catalog_stats(conn, source)
    assert (stats.total, stats.deleted) == (3, 1)
    cov = {c.field: c.filled for c in stats.coverage}
    assert cov == {"title": 2, "body": 1}


def test_generated_rows_are_coherent() -> None:
    """Variants repeat a whole product (texts, category, brand, part number, fitment), and
    engines belong to the vehicle's make, as a mechanic would expect."""
    from prodsearch.catalog import vocab

    en_name = {pt.category: pt.en for pt in vocab.PART_TYPES}
    for row in generate.rows(4000, seed=3):
        r = dict(zip(generate.COLUMNS, row, strict=True))
        assert r["brand"] in r["name"] and r["part_number"] in r["name"]
        assert en_name[r["category"]] in r["name"]
        assert r["vehicle"] in r["name"]
        if r["engine"]:
            assert r["engine"] in vocab.engines_for(r["vehicle"])
