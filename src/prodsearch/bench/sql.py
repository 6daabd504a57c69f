"""SQL that only the benchmarks run: their scratch database and scratch table, the
original platform's row-by-row write (the embed baseline), and the catalog edits and
embedding reads of the freshness bench."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psycopg
from psycopg import sql

from prodsearch.catalog.source import Source
from prodsearch.db.names import BENCH_LIVE_VECTORS, BENCH_UNIQUE_VECTORS, EMBEDDINGS, QUERY_MAPS

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
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(BENCH_UNIQUE_VECTORS)).fetchone()
    return int(row[0]) if row else 0


def drop_unique_vectors(conn: psycopg.Connection[Any]) -> None:
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(BENCH_UNIQUE_VECTORS))


# a fixed pseudo-random share of the products (per mille), the same in every run
_HELD = sql.SQL("mod(abs(hashtextextended(product_id::text, 0)), 1000) < %(per_mille)s")


def copy_vectors_but(conn: psycopg.Connection[Any], share: float) -> int:
    """A scratch copy of the embeddings without a fixed ``share`` of the products (held
    back for :func:`insert_held`); its row count."""
    drop_live_vectors(conn)
    conn.execute(
        sql.SQL("CREATE TABLE {} AS SELECT product_id, embedding FROM {} WHERE NOT ({})").format(
            BENCH_LIVE_VECTORS, EMBEDDINGS, _HELD
        ),
        {"per_mille": round(share * 1000)},
    )
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(BENCH_LIVE_VECTORS)).fetchone()
    return int(row[0]) if row else 0


def insert_held(conn: psycopg.Connection[Any], share: float) -> int:
    """The held-back products' vectors inserted into the scratch copy (its index inserts
    each row as a live write would); rows inserted."""
    cur = conn.execute(
        sql.SQL("INSERT INTO {} SELECT product_id, embedding FROM {} WHERE {}").format(
            BENCH_LIVE_VECTORS, EMBEDDINGS, _HELD
        ),
        {"per_mille": round(share * 1000)},
    )
    return cur.rowcount


def drop_live_vectors(conn: psycopg.Connection[Any]) -> None:
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(BENCH_LIVE_VECTORS))


def sample_vectors(conn: psycopg.Connection[Any], n: int) -> list[tuple[int, Any]]:
    """``n`` stored (product id, vector) pairs spread over the table, for insert timing."""
    rows = conn.execute(
        sql.SQL(
            "SELECT product_id, embedding FROM {t} WHERE product_id IN "
            "(SELECT product_id FROM {t} ORDER BY product_id %% 997, product_id LIMIT %s)"
        ).format(t=EMBEDDINGS),
        (n,),
    ).fetchall()
    return [(int(pid), vec) for pid, vec in rows]


def rewrite_vector(conn: psycopg.Connection[Any], pid: int, vector: Any) -> None:
    """Store another vector for one product: a live index insert (the caller rolls back)."""
    conn.execute(
        sql.SQL("UPDATE {} SET embedding = %s WHERE product_id = %s").format(EMBEDDINGS),
        (vector, pid),
    )


# ---------------------------------------------------------------- bench freshness: edits


def clone_product(
    conn: psycopg.Connection[Any], source: Source, template: int, new_id: int, name: str
) -> None:
    """A new product: a copy of ``template`` under ``new_id`` with another name."""
    name_col = source.text_columns[0]
    cols = list(source.columns)
    values = [
        sql.SQL("%(id)s")
        if c == source.id_column
        else sql.SQL("%(name)s")
        if c == name_col
        else sql.Identifier("s", c)
        for c in cols
    ]
    conn.execute(
        sql.SQL(
            "INSERT INTO {t} ({cols}) SELECT {values} FROM {t} AS s WHERE s.{id} = %(tpl)s"
        ).format(
            t=source.qualified,
            cols=sql.SQL(", ").join(sql.Identifier(c) for c in cols),
            values=sql.SQL(", ").join(values),
            id=sql.Identifier(source.id_column),
        ),
        {"id": new_id, "name": name, "tpl": template},
    )


def set_text(
    conn: psycopg.Connection[Any], source: Source, pid: int, column: str, value: str
) -> None:
    conn.execute(
        sql.SQL("UPDATE {t} SET {c} = %s WHERE {id} = %s").format(
            t=source.qualified, c=sql.Identifier(column), id=sql.Identifier(source.id_column)
        ),
        (value, pid),
    )


def soft_delete(conn: psycopg.Connection[Any], source: Source, pid: int) -> None:
    """Mark a product deleted through the configured boolean flag."""
    flag = source.live_flag()
    assert flag is not None, "soft delete needs a boolean soft-delete column"
    column, live = flag
    conn.execute(
        sql.SQL("UPDATE {t} SET {c} = %s WHERE {id} = %s").format(
            t=source.qualified, c=sql.Identifier(column), id=sql.Identifier(source.id_column)
        ),
        (not live, pid),
    )


def hard_delete(conn: psycopg.Connection[Any], source: Source, pid: int) -> None:
    conn.execute(
        sql.SQL("DELETE FROM {t} WHERE {id} = %s").format(
            t=source.qualified, id=sql.Identifier(source.id_column)
        ),
        (pid,),
    )


def live_ids(conn: psycopg.Connection[Any], source: Source) -> list[int]:
    rows = conn.execute(
        sql.SQL("SELECT s.{id} FROM {src} AS s WHERE {eligible} ORDER BY 1").format(
            **source.sql_parts()
        )
    ).fetchall()
    return [int(r[0]) for r in rows]


def max_id(conn: psycopg.Connection[Any], source: Source) -> int:
    row = conn.execute(
        sql.SQL("SELECT coalesce(max({id}), 0) FROM {t}").format(
            id=sql.Identifier(source.id_column), t=source.qualified
        )
    ).fetchone()
    return int(row[0]) if row else 0


def embedded_since(conn: psycopg.Connection[Any], ids: Sequence[int]) -> dict[int, datetime]:
    """``updated_at`` of the stored embeddings of ``ids`` (absent: no embedding)."""
    rows = conn.execute(
        sql.SQL("SELECT product_id, updated_at FROM {} WHERE product_id = ANY(%s)").format(
            EMBEDDINGS
        ),
        (list(ids),),
    ).fetchall()
    return {int(pid): at for pid, at in rows}


def category_profile(
    conn: psycopg.Connection[Any], source: Source
) -> tuple[dict[str, float], dict[str, set[str]], dict[str, int]]:
    """Per category of live products: the median price and the brands that make it; per
    brand: its live products (the demo columns category, brand, price)."""
    parts = source.sql_parts()
    medians = {
        str(c): float(m)
        for c, m in conn.execute(
            sql.SQL(
                "SELECT s.category, percentile_cont(0.5) WITHIN GROUP (ORDER BY s.price)"
                " FROM {src} AS s WHERE {eligible} AND s.price IS NOT NULL GROUP BY 1"
            ).format(**parts)
        )
        if c is not None and m is not None
    }
    makers: dict[str, set[str]] = {}
    sizes: dict[str, int] = {}
    for category, brand, n in conn.execute(
        sql.SQL(
            "SELECT s.category, s.brand, count(*) FROM {src} AS s WHERE {eligible}"
            " AND s.category IS NOT NULL AND s.brand IS NOT NULL GROUP BY 1, 2"
        ).format(**parts)
    ):
        makers.setdefault(str(category), set()).add(str(brand))
        sizes[str(brand)] = sizes.get(str(brand), 0) + int(n)
    return medians, makers, sizes


def categories_of(conn: psycopg.Connection[Any], source: Source, ids: Sequence[int]) -> list[str]:
    """The category of each product of ``ids`` (in that order, when it has one)."""
    rows = dict(
        conn.execute(
            sql.SQL("SELECT s.{id}, s.category FROM {src} AS s WHERE s.{id} = ANY(%s)").format(
                **source.sql_parts()
            ),
            (list(ids),),
        ).fetchall()
    )
    return [str(rows[i]) for i in ids if rows.get(i) is not None]
