"""SQL for the embeddings table's GIN indexes — full text (``search_tsv``) and product
codes (``code_keys``) — which a bulk load drops and builds once at the end.

Kept live while rows stream in, every written row is a GIN insert made by the backend
that receives it, on the same two cores as inference; one build over the finished table
is cheaper (docs/BENCHMARKS.md, "Session 10: fewer name pairs, text indexes built after the
load, a smaller small graph"). Without them, full-text and code lookups still
answer (sequential scans, slower), as search does without the HNSW index.
"""

from __future__ import annotations

import time
from typing import Any

import psycopg
from psycopg import sql

from prodsearch.db.names import EMBEDDINGS, SCHEMA

# (index name, column): the indexes of migration 0002, by the names it gave them
TEXT_INDEXES: tuple[tuple[str, str], ...] = (
    ("idx_product_embeddings_tsv", "search_tsv"),
    ("idx_product_embeddings_codes", "code_keys"),
)


def missing(conn: psycopg.Connection[Any]) -> list[str]:
    """The names of the text indexes that do not exist now."""
    rows = conn.execute(
        "SELECT indexname FROM pg_indexes WHERE schemaname = %s AND indexname = ANY(%s)",
        (SCHEMA, [name for name, _ in TEXT_INDEXES]),
    ).fetchall()
    present = {r[0] for r in rows}
    return [name for name, _ in TEXT_INDEXES if name not in present]


def drop(conn: psycopg.Connection[Any]) -> None:
    for name, _ in TEXT_INDEXES:
        conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(SCHEMA, name)))


def build(conn: psycopg.Connection[Any]) -> float:
    """Create the missing text indexes (with generous maintenance memory); seconds."""
    started = time.perf_counter()
    conn.execute("SET maintenance_work_mem = '512MB'")
    for name, column in TEXT_INDEXES:
        conn.execute(
            sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} USING gin ({})").format(
                sql.Identifier(name), EMBEDDINGS, sql.Identifier(column)
            )
        )
    conn.execute("RESET maintenance_work_mem")
    return time.perf_counter() - started
