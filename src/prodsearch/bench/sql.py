"""SQL that only the benchmarks run: their scratch database and scratch table, and the
original platform's row-by-row write (the embed baseline)."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from prodsearch.db.names import BENCH_UNIQUE_VECTORS, EMBEDDINGS, QUERY_MAPS

# the original platform's statement: one row per call, executemany
ORIGINAL_UPSERT = sql.SQL(
    "INSERT INTO {} (product_id, embedding, content_hash, model_name, mode) "
    "VALUES (%s, %s, %s, %s, 'exact') ON CONFLICT (product_id) DO UPDATE SET "
    "embedding = EXCLUDED.embedding, content_hash = EXCLUDED.content_hash, updated_at = now()"
).format(EMBEDDINGS)


def recreate_database(conn: psycopg.Connection[Any], name: str) -> None:
    """Drop (forcing out its sessions) and create database ``name``; autocommit ``conn``."""
    drop_database(conn, name)
    conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))


def drop_database(conn: psycopg.Connection[Any], name: str) -> None:
    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def empty_vectors(conn: psycopg.Connection[Any]) -> None:
    """No embeddings and no query map: the next run is a first run."""
    conn.execute(sql.SQL("TRUNCATE {}, {}").format(EMBEDDINGS, QUERY_MAPS))
    conn.commit()


def no_parallel_workers(conn: psycopg.Connection[Any]) -> None:
    """Serial queries for the session, as the API runs them."""
    conn.execute("SET max_parallel_workers_per_gather = 0")


def copy_unique_vectors(conn: psycopg.Connection[Any]) -> int:
    """A scratch table of one vector per distinct text (the lowest id); its row count."""
    drop_unique_vectors(conn)
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} AS SELECT DISTINCT ON (content_hash) product_id, embedding FROM {} "
            "ORDER BY content_hash, product_id"
        ).format(BENCH_UNIQUE_VECTORS, EMBEDDINGS)
    )
    conn.commit()
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(BENCH_UNIQUE_VECTORS)).fetchone()
    return int(row[0]) if row else 0


def drop_unique_vectors(conn: psycopg.Connection[Any]) -> None:
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(BENCH_UNIQUE_VECTORS))
    conn.commit()
