"""SQL for the HNSW index ``idx_product_embeddings_hnsw`` (cosine): build, drop, status,
validity, and the distance expressions that queries must use to be served by it.

Two shapes under the same name: ``vector`` indexes the stored float32 vectors;
``halfvec`` indexes the expression ``embedding::halfvec(dim)`` — half the size, built
faster, with the same recall at this dimension (see docs/BENCHMARKS.md). Queries must use
the same expression to use the index: :func:`order_expression` gives it.
"""

from __future__ import annotations

import re
import time
from dataclasses import asdict, dataclass
from typing import Any, Literal

import psycopg
from psycopg import sql

from prodsearch.db.introspect import embedding_dim, total_size
from prodsearch.db.names import EMBEDDINGS, INDEX, INDEX_NAME, SCHEMA

IndexType = Literal["vector", "halfvec"]

# a rebuild beside the serving index (:func:`build_beside`): the new graph's name until it
# is swapped in, and the replaced graph's until it is dropped
REBUILD_NAME = INDEX_NAME + "_new"
RETIRED_NAME = INDEX_NAME + "_old"

# ef_construction sized to the table when the setting is 0 (the default): the cheapest
# build measured to keep ε-recall@10 ≥ 0.99 at the default ef_search (300) on two builds,
# per number of vectors — (at most this many vectors, ef_construction), then
# LARGE_EF_CONSTRUCTION for any larger table. Measured with `prodsearch bench index`:
# docs/BENCHMARKS.md, "The index build sized to the catalog" and "The index build at
# 278,697 products without AMX".
AUTO_EF_CONSTRUCTION: tuple[tuple[int, int], ...] = ((25_000, 64), (50_000, 128))
LARGE_EF_CONSTRUCTION = 320

# The index's comment records the ef_construction the graph was built with whenever later
# inserts search with another one (its options hold that one, as pgvector reads it there)
_BUILT_COMMENT = "built with ef_construction {}"
_BUILT_PATTERN = re.compile(r"built with ef_construction (\d+)")

# the index's catalog row; parameters: SCHEMA, INDEX_NAME
_INDEX_ROW = (
    " FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid"
    " JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s"
)
INDEX_ROW_PARAMS = (SCHEMA, INDEX_NAME)
# whether the index is valid: true, false, or no row (NULL as a scalar subquery) when absent
VALIDITY_SQL = "SELECT i.indisvalid" + _INDEX_ROW


@dataclass(frozen=True)
class IndexStatus:
    """The HNSW index as the catalog sees it (``exists`` False: the rest is empty)."""

    name: str
    exists: bool
    table_total_bytes: int | None
    type: IndexType | None = None
    size_bytes: int | None = None
    size: str | None = None
    m: int | None = None
    ef_construction: int | None = None  # the build's
    insert_ef_construction: int | None = None  # later inserts' (and VACUUM's repairs)
    valid: bool = False
    ready: bool = False
    rows: int | None = None
    definition: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def status(conn: psycopg.Connection[Any]) -> IndexStatus:
    row = conn.execute(
        "SELECT pg_relation_size(i.indexrelid), pg_size_pretty(pg_relation_size(i.indexrelid)), "
        "c.reloptions, i.indisvalid, i.indisready, pg_get_indexdef(i.indexrelid), "
        "(SELECT reltuples FROM pg_class WHERE oid = i.indrelid), "
        "obj_description(i.indexrelid, 'pg_class')" + _INDEX_ROW,
        INDEX_ROW_PARAMS,
    ).fetchone()
    table_bytes = total_size(conn, EMBEDDINGS)
    if row is None:
        return IndexStatus(INDEX_NAME, False, table_bytes)
    size, pretty, options, valid, ready, definition, reltuples, comment = row
    opts = dict(o.split("=", 1) for o in (options or []))
    inserts = int(opts.get("ef_construction", 64))
    built = _BUILT_PATTERN.search(comment or "")
    return IndexStatus(
        name=INDEX_NAME,
        exists=True,
        table_total_bytes=table_bytes,
        type="halfvec" if "halfvec" in definition else "vector",
        size_bytes=int(size),
        size=pretty,
        m=int(opts.get("m", 16)),
        ef_construction=int(built.group(1)) if built else inserts,
        insert_ef_construction=inserts,
        valid=bool(valid),
        ready=bool(ready),
        rows=int(reltuples) if reltuples and reltuples > 0 else None,
        definition=definition,
    )


def current_type(conn: psycopg.Connection[Any]) -> IndexType | None:
    return status(conn).type


def order_expression(index_type: str | None, dim: int) -> sql.Composable:
    """Cosine distance to the query vector ``%(q)s``, in the shape the index serves."""
    if index_type == "halfvec":
        return sql.SQL("e.embedding::halfvec({d}) <=> %(q)s::halfvec({d})").format(
            d=sql.Literal(dim)
        )
    return sql.SQL("e.embedding <=> %(q)s::vector({d})").format(d=sql.Literal(dim))


def exact_expression(dim: int) -> sql.Composable:
    """Cosine distance to ``%(q)s`` on the stored float32 vectors, as a function call that
    no index can serve: the query computes it for every candidate row (exact search)."""
    return sql.SQL("cosine_distance(e.embedding, %(q)s::vector({d}))").format(d=sql.Literal(dim))


def auto_ef_construction(vectors: int) -> int:
    """The ef_construction an index over ``vectors`` rows is built with when the setting
    asks for none (0): see :data:`AUTO_EF_CONSTRUCTION`."""
    for most, efc in AUTO_EF_CONSTRUCTION:
        if vectors <= most:
            return efc
    return LARGE_EF_CONSTRUCTION


def ef_construction_for(
    conn: psycopg.Connection[Any], configured: int, table: sql.Composable = EMBEDDINGS
) -> int:
    """``configured`` when set, else the one sized to the rows of ``table`` now."""
    if configured > 0:
        return configured
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(table)).fetchone()
    return auto_ef_construction(int(row[0]) if row else 0)


def insert_ef_for(built: int, configured: int) -> int:
    """The ef_construction inserts search with: ``configured`` when set and below the
    build's (a live insert never searches wider than the graph was built), else the
    build's."""
    return configured if 0 < configured < built else built


def set_insert_ef_construction(
    conn: psycopg.Connection[Any], ef_construction: int, name: str = INDEX_NAME
) -> None:
    """The candidate list later inserts (and VACUUM's repairs) search with: pgvector
    reads ``ef_construction`` from the index's options at each insert, so it can be
    narrower than the one the graph was built with, which makes inserts cheaper at the
    same recall (docs/BENCHMARKS.md, "Live inserts at a narrower candidate list").
    The caller commits."""
    conn.execute(
        sql.SQL("ALTER INDEX {} SET (ef_construction = {})").format(
            sql.Identifier(SCHEMA, name), sql.Literal(ef_construction)
        )
    )


def _settle_inserts(conn: psycopg.Connection[Any], built: int, inserts: int, name: str) -> None:
    """Record the build's ef_construction in the index's comment and set the inserts'."""
    conn.execute(
        sql.SQL("COMMENT ON INDEX {} IS {}").format(
            sql.Identifier(SCHEMA, name), sql.Literal(_BUILT_COMMENT.format(built))
        )
    )
    set_insert_ef_construction(conn, inserts, name)


def ensure_insert_ef(conn: psycopg.Connection[Any], st: IndexStatus, configured: int) -> bool:
    """The existing index ``st`` (built before, or under another setting) brought to the
    configured inserts' ef_construction — back to the build's too; whether it changed.
    The caller commits."""
    if not st.exists or st.ef_construction is None:
        return False
    inserts = insert_ef_for(st.ef_construction, configured)
    if inserts == st.insert_ef_construction:
        return False
    _settle_inserts(conn, st.ef_construction, inserts, INDEX_NAME)
    return True


def drop(conn: psycopg.Connection[Any]) -> bool:
    existed = status(conn).exists
    conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(INDEX))
    return existed


def build(
    conn: psycopg.Connection[Any],
    index_type: str = "halfvec",
    m: int = 16,
    ef_construction: int = 0,
    workers: int = 2,
    table: sql.Composable = EMBEDDINGS,
    name: str = INDEX_NAME,
    insert_ef_construction: int = 0,
) -> float:
    """(Re)build the index with generous maintenance memory and parallel workers; seconds.
    ``ef_construction`` 0: sized to the table (:func:`auto_ef_construction`);
    ``insert_ef_construction``: what later inserts search with (0: the build's).
    ``table`` and ``name``: another table of the same shape (benchmarks' scratch
    copies)."""
    started = time.perf_counter()
    conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(SCHEMA, name)))
    _create(conn, index_type, m, ef_construction, workers, table, name, insert_ef_construction)
    return time.perf_counter() - started


def build_beside(
    conn: psycopg.Connection[Any],
    index_type: str = "halfvec",
    m: int = 16,
    ef_construction: int = 0,
    workers: int = 2,
    insert_ef_construction: int = 0,
) -> None:
    """The first step of a rebuild that blocks neither searches nor writes: a new graph
    built ``CONCURRENTLY`` under :data:`REBUILD_NAME` beside the index that keeps serving
    (twice the index's space meanwhile); what an interrupted rebuild left is dropped
    first. Needs an autocommit connection (PostgreSQL runs these outside transactions).
    Then :func:`swap_in` and :func:`drop_retired`; the caller times the three."""
    for leftover in (REBUILD_NAME, RETIRED_NAME):
        _drop_concurrently(conn, leftover)
    _create(
        conn,
        index_type,
        m,
        ef_construction,
        workers,
        EMBEDDINGS,
        REBUILD_NAME,
        insert_ef_construction,
        concurrently=True,
    )


def swap_in(conn: psycopg.Connection[Any]) -> None:
    """In the caller's transaction: the graph :func:`build_beside` built takes the index's
    name, and the one it replaces :data:`RETIRED_NAME`. Renaming an index takes SHARE
    UPDATE EXCLUSIVE, so searches and writes go on."""
    conn.execute(
        sql.SQL("ALTER INDEX IF EXISTS {} RENAME TO {}").format(INDEX, sql.Identifier(RETIRED_NAME))
    )
    conn.execute(
        sql.SQL("ALTER INDEX {} RENAME TO {}").format(
            sql.Identifier(SCHEMA, REBUILD_NAME), sql.Identifier(INDEX_NAME)
        )
    )


def drop_retired(conn: psycopg.Connection[Any]) -> None:
    """After :func:`swap_in`: the replaced graph dropped without blocking anything (an
    autocommit connection)."""
    _drop_concurrently(conn, RETIRED_NAME)


def _drop_concurrently(conn: psycopg.Connection[Any], name: str) -> None:
    conn.execute(
        sql.SQL("DROP INDEX CONCURRENTLY IF EXISTS {}").format(sql.Identifier(SCHEMA, name))
    )


def _create(
    conn: psycopg.Connection[Any],
    index_type: str,
    m: int,
    ef_construction: int,
    workers: int,
    table: sql.Composable,
    name: str,
    insert_ef_construction: int,
    concurrently: bool = False,
) -> None:
    """CREATE INDEX (with generous maintenance memory and parallel workers), the inserts'
    ef_construction settled, the table analysed."""
    dim = embedding_dim(conn)
    ef_construction = ef_construction_for(conn, ef_construction, table)
    column = (
        sql.SQL("(embedding::halfvec({})) halfvec_cosine_ops").format(sql.Literal(dim))
        if index_type == "halfvec"
        else sql.SQL("embedding vector_cosine_ops")
    )
    conn.execute("SET maintenance_work_mem = '1GB'")
    conn.execute(sql.SQL("SET max_parallel_maintenance_workers = {}").format(sql.Literal(workers)))
    conn.execute(
        sql.SQL(
            "CREATE INDEX {concurrently} {name} ON {table} USING hnsw ({column}) "
            "WITH (m = {m}, ef_construction = {efc})"
        ).format(
            concurrently=sql.SQL("CONCURRENTLY" if concurrently else ""),
            name=sql.Identifier(name),
            table=table,
            column=column,
            m=sql.Literal(m),
            efc=sql.Literal(ef_construction),
        )
    )
    inserts = insert_ef_for(ef_construction, insert_ef_construction)
    if inserts != ef_construction:
        _settle_inserts(conn, ef_construction, inserts, name)
    conn.execute(sql.SQL("ANALYZE {}").format(table))
    conn.execute("RESET maintenance_work_mem")
    conn.execute("RESET max_parallel_maintenance_workers")
