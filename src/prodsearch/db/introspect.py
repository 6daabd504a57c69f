"""What the database says about its own objects: tables and columns
(``information_schema``), a vector column's dimension, sizes. One home for catalog reads."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from prodsearch.db.names import EMBEDDINGS_TABLE, SCHEMA


def columns(conn: psycopg.Connection[Any], schema: str, table: str) -> dict[str, str]:
    """Column name -> data type, in table order (empty: no such table)."""
    rows = conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns "
        "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
        (schema, table),
    ).fetchall()
    return {str(name): str(kind) for name, kind in rows}


def column_details(
    conn: psycopg.Connection[Any], schema: str, table: str
) -> list[tuple[str, str, bool, bool]]:
    """(name, data type, NOT NULL, has a default) per column of ``schema.table``."""
    rows = conn.execute(
        "SELECT column_name, data_type, is_nullable = 'NO', column_default IS NOT NULL "
        "FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
        "ORDER BY ordinal_position",
        (schema, table),
    ).fetchall()
    return [(str(c), str(t), bool(nn), bool(d)) for c, t, nn, d in rows]


def user_tables(conn: psycopg.Connection[Any]) -> list[str]:
    """``schema.table`` of every table outside the system schemas."""
    rows = conn.execute(
        "SELECT table_schema, table_name FROM information_schema.tables "
        "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2"
    ).fetchall()
    return [f"{s}.{t}" for s, t in rows]


def embedding_dim(conn: psycopg.Connection[Any]) -> int:
    """The dimension of ``product_embeddings.embedding`` (its ``vector(n)`` type)."""
    row = conn.execute(
        "SELECT atttypmod FROM pg_attribute "
        "WHERE attrelid = %s::regclass AND attname = 'embedding'",
        (f"{SCHEMA}.{EMBEDDINGS_TABLE}",),
    ).fetchone()
    assert row is not None
    return int(row[0])


def total_size(conn: psycopg.Connection[Any], table: sql.Composable) -> int | None:
    """Bytes of a table with its indexes and TOAST (None: no such table)."""
    row = conn.execute(
        sql.SQL("SELECT pg_total_relation_size(to_regclass({}))").format(
            sql.Literal(table.as_string())
        )
    ).fetchone()
    return int(row[0]) if row and row[0] is not None else None


def database_size(conn: psycopg.Connection[Any]) -> str:
    """The current database's size, human-readable."""
    row = conn.execute("SELECT pg_size_pretty(pg_database_size(current_database()))").fetchone()
    return str(row[0]) if row else "?"
