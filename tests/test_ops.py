"""Status, verify, and the original platform's monitoring SQL."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from prodsearch.db.names import DEMO_CATALOG, EMBEDDINGS_NAME
from tests.conftest import run_cli

MONITORING_SQL = {
    "count": f"SELECT COUNT(*) FROM {EMBEDDINGS_NAME};",
    "self_similarity": (
        "SELECT e1.product_id, 1 - (e1.embedding <=> e2.embedding) AS similarity "
        f"FROM {EMBEDDINGS_NAME} e1 "
        f"JOIN {EMBEDDINGS_NAME} e2 ON e1.product_id = e2.product_id "
        "LIMIT 5;"
    ),
    "index_size": (
        "SELECT indexrelname AS indexname, pg_size_pretty(pg_relation_size(indexrelid)) "
        "FROM pg_stat_user_indexes WHERE indexrelname = 'idx_product_embeddings_hnsw';"
    ),
}


@pytest.fixture(scope="module")
def env(search_db: str, pg_root: Path) -> dict[str, str]:
    return {"DATABASE_URL": search_db, "PRODSEARCH_HOME": str(pg_root), "PRODSEARCH_MODE": "int8"}


def _psql(env: dict[str, str], query: str) -> list[list[str]]:
    res = run_cli("db", "psql", "-tA", "-F", "|", "-c", query, env=env)
    assert res.returncode == 0, res.stderr
    return [line.split("|") for line in res.stdout.splitlines() if line.strip()]


def test_monitoring_sql_runs_unchanged(env: dict[str, str], search_db: str) -> None:
    with psycopg.connect(search_db) as conn:
        (n,) = conn.execute(f"SELECT count(*) FROM {DEMO_CATALOG} WHERE NOT is_deleted").fetchone()
    assert _psql(env, MONITORING_SQL["count"]) == [[str(n)]]
    sims = _psql(env, MONITORING_SQL["self_similarity"])
    assert len(sims) == 5 and all(abs(float(s) - 1.0) < 1e-6 for _, s in sims)
    ((name, size),) = _psql(env, MONITORING_SQL["index_size"])
    assert name == "idx_product_embeddings_hnsw" and size.split()[1] in ("kB", "MB", "GB")


def test_status_table_and_json(env: dict[str, str]) -> None:
    res = run_cli("status", env=env)
    assert res.returncode == 0, res.stderr
    for words in (
        "eligible products",
        "coverage",
        "100.00%",
        "last run",
        "succeeded",
        "idx_product_embeddings_hnsw",
        "database size",
    ):
        assert words in res.stdout, words
    data = json.loads(run_cli("status", "--json", env=env).stdout)
    assert data["embeddings"] == data["eligible_products"] > 0
    assert (data["missing"], data["stale"], data["orphans"]) == (0, 0, 0)
    assert data["index"]["valid"] and data["index"]["m"] == 16
    assert data["last_run"]["status"] == "succeeded"
    other_mode = json.loads(
        run_cli("status", "--json", env={**env, "PRODSEARCH_MODE": "exact"}).stdout
    )
    assert other_mode["stale"] == data["embeddings"]  # a mode change makes every row stale


def test_verify_passes_then_catches_tampering(env: dict[str, str], search_db: str) -> None:
    res = run_cli("verify", "--sample", "100", env=env)
    assert res.returncode == 0, res.stdout + res.stderr
    ok = json.loads(run_cli("verify", "--sample", "50", "--json", env=env).stdout)
    assert ok["ok"] and {c["check"] for c in ok["checks"]} == {
        "count parity",
        "integrity",
        "hashes",
        "self-consistency",
        "index recall",
    }
    with psycopg.connect(search_db) as conn:
        (pid, original) = conn.execute(
            f"SELECT product_id, embedding::text FROM {EMBEDDINGS_NAME} ORDER BY 1 DESC LIMIT 1"
        ).fetchone()
        conn.execute(
            f"UPDATE {EMBEDDINGS_NAME} SET embedding = "
            f"(SELECT embedding FROM {EMBEDDINGS_NAME} "
            " WHERE product_id <> %s LIMIT 1) WHERE product_id = %s",
            (pid, pid),
        )
    try:
        bad = run_cli("verify", "--sample", "50", env=env)
        assert bad.returncode == 1
        assert "verify failed: integrity" in bad.stderr
    finally:
        with psycopg.connect(search_db) as conn:
            conn.execute(
                f"UPDATE {EMBEDDINGS_NAME} SET embedding = %s::vector WHERE product_id = %s",
                (original, pid),
            )
    assert run_cli("verify", "--sample", "50", env=env).returncode == 0
