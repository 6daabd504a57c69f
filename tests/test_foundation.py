"""Embedded server, migrations, CLI error handling, settings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import psycopg

from prodsearch.db import migrate
from prodsearch.db.migrate import available
from prodsearch.db.names import (
    DEMO_CATALOG,
    DEMO_CATALOG_SCHEMA,
    EMBEDDINGS_NAME,
    RUNS_NAME,
    SCHEMA,
)
from tests.conftest import run_cli


def test_pgvector_is_installed_and_recent(conn: psycopg.Connection[Any]) -> None:
    (version,) = conn.execute(
        "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
    ).fetchone()
    major, minor = (int(x) for x in version.split(".")[:2])
    assert (major, minor) >= (0, 8)


def test_schema_has_original_platform_names(conn: psycopg.Connection[Any]) -> None:
    tables = {
        f"{s}.{t}"
        for s, t in conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables "
            "WHERE table_schema IN (%s, %s)",
            (DEMO_CATALOG_SCHEMA, SCHEMA),
        )
    }
    assert {
        f"{DEMO_CATALOG}",
        f"{EMBEDDINGS_NAME}",
        f"{RUNS_NAME}",
    } <= tables
    (typ,) = conn.execute(
        "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
        f"WHERE attrelid = '{EMBEDDINGS_NAME}'::regclass "
        "AND attname = 'embedding'"
    ).fetchone()
    assert typ == "vector(384)"


def test_migrate_twice_changes_nothing(conn: psycopg.Connection[Any]) -> None:
    before = conn.execute(
        "SELECT version, checksum, applied_at FROM prodsearch.schema_migrations ORDER BY 1"
    ).fetchall()
    assert [r[0] for r in before] == [m.version for m in available()]
    assert migrate(conn) == []
    after = conn.execute(
        "SELECT version, checksum, applied_at FROM prodsearch.schema_migrations ORDER BY 1"
    ).fetchall()
    assert after == before


def test_cli_init_twice(db_url: str, tmp_path: Path) -> None:
    env = {"DATABASE_URL": db_url, "PRODSEARCH_HOME": str(tmp_path)}
    first = run_cli("init", env=env)
    assert first.returncode == 0, first.stderr
    assert "up to date" in first.stdout  # the template is already migrated
    second = run_cli("init", env=env)
    assert second.returncode == 0 and "up to date" in second.stdout


def test_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    env = {"DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x", "PRODSEARCH_HOME": str(tmp_path)}
    res = run_cli("init", env=env, timeout=60)  # the connect timeout ends it, not this
    assert res.returncode != 0
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, res.stderr
    assert "cannot connect" in lines[0] and "Traceback" not in res.stderr
    debug = run_cli("--debug", "init", env=env, timeout=30)
    assert "Traceback" in debug.stderr


def test_config_masks_secrets(tmp_path: Path) -> None:
    env = {
        "DATABASE_URL": "postgresql://app:s3cret@db.example:5432/shop",
        "PRODSEARCH_API_KEY": "topsecret",
        "PRODSEARCH_HOME": str(tmp_path),
    }
    res = run_cli("config", "--json", env=env)
    assert res.returncode == 0, res.stderr
    data = json.loads(res.stdout)
    assert "s3cret" not in res.stdout and "topsecret" not in res.stdout
    assert data["database_url"] == "postgresql://app:****@db.example:5432/shop"
    assert data["hnsw_m"] == 16 and data["hnsw_ef_construction"] == 0  # sized to the table


def test_db_start_psql_stop_status(tmp_path: Path) -> None:
    env = {"PRODSEARCH_HOME": str(tmp_path / "home")}
    env_no_url = {"DATABASE_URL": "", "PRODSEARCH_DATABASE_URL": ""}
    try:
        res = run_cli("db", "start", env={**env, **env_no_url})
        assert res.returncode == 0, res.stderr
        res = run_cli(
            "db",
            "psql",
            "-tAc",
            "select extversion from pg_extension where extname='vector'",
            env={**env, **env_no_url},
        )
        assert res.returncode == 0, res.stderr
        assert res.stdout.strip().startswith("0.8.")
        res = run_cli("db", "status", env={**env, **env_no_url})
        assert res.stdout.startswith("running")
    finally:
        stop = run_cli("db", "stop", env={**env, **env_no_url})
    assert stop.returncode == 0 and "stopped" in stop.stdout
    res = run_cli("db", "status", env={**env, **env_no_url})
    assert res.stdout.startswith("stopped")


def test_demo_runs_every_step_without_serving(db_url: str, pg_root: Path) -> None:
    env = {"DATABASE_URL": db_url, "PRODSEARCH_HOME": str(pg_root), "PRODSEARCH_MODE": "int8"}
    res = run_cli("demo", "--products", "300", "--no-serve", env=env)
    assert res.returncode == 0, res.stderr
    for step in (
        "[1/5] database running",
        "[2/5] schema ready",
        "[3/5] demo catalog generated",
        "[4/5] embedding",
        "index built",
        "[5/5] not serving",
    ):
        assert step in res.stdout, step
    again = run_cli("demo", "--products", "300", "--no-serve", env=env)
    assert "catalog already holds 300 products (kept)" in again.stdout
    # the second run embedded nothing: every eligible product was unchanged
    status = json.loads(run_cli("status", "--json", env=env).stdout)
    last = status["last_run"]
    assert last["status"] == "succeeded" and last["embedded"] == 0
    assert last["skipped_unchanged"] == status["eligible_products"] > 250
