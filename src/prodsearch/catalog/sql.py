"""SQL about the source catalog table — one place: reads and writes of its rows (import,
the demo generator, coverage, samples and pairs drawn from it, benchmark edits).

Identifiers come from the validated :class:`~prodsearch.catalog.source.Source` and are
composed with ``psycopg.sql``; values are parameters.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql
from psycopg.rows import dict_row

from prodsearch.catalog.source import Source


def count_rows(conn: psycopg.Connection[Any], source: Source) -> int:
    """Every row of the table, deleted ones included."""
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(source.qualified)).fetchone()
    return int(row[0]) if row else 0


def coverage_counts(
    conn: psycopg.Connection[Any], source: Source, fields: Sequence[str]
) -> tuple[int, int, list[int]]:
    """(rows, soft-deleted rows, live rows with a non-empty value per field)."""
    filled = [
        sql.SQL(
            "count(*) FILTER (WHERE NOT {d} AND nullif(btrim({c}::text), '') IS NOT NULL)"
        ).format(d=source.deleted_sql(), c=sql.Identifier(f))
        for f in fields
    ]
    query = sql.SQL("SELECT count(*), count(*) FILTER (WHERE {d}), {filled} FROM {t}").format(
        d=source.deleted_sql(), filled=sql.SQL(", ").join(filled), t=source.qualified
    )
    row = conn.execute(query).fetchone()
    assert row is not None
    total, deleted, *counts = row
    return int(total), int(deleted), [int(c) for c in counts]


def replace_rows(
    conn: psycopg.Connection[Any],
    table: sql.Composable,
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    progress: Callable[[int], None] | None = None,
) -> None:
    """Empty ``table`` and COPY ``rows`` into ``columns`` (in the caller's transaction)."""
    cols = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    with conn.cursor() as cur:
        cur.execute(sql.SQL("TRUNCATE {}").format(table))
        with cur.copy(sql.SQL("COPY {} ({}) FROM STDIN").format(table, cols)) as copy:
            for n, row in enumerate(rows, 1):
                copy.write_row(row)
                if progress is not None and n % 10_000 == 0:
                    progress(n)


def _upsert_from_stage(source: Source, cols: list[str], updated_at: bool) -> sql.Composed:
    """INSERT from the staging table, updating only rows whose provided columns differ;
    returns (inserted, updated)."""
    data_cols = cols[1:]
    sets: list[sql.Composable] = [
        sql.SQL("{c} = EXCLUDED.{c}").format(c=sql.Identifier(c)) for c in data_cols
    ]
    if updated_at:
        sets.append(sql.SQL("updated_at = now()"))
    action = (
        sql.SQL("DO UPDATE SET {sets} WHERE ({old}) IS DISTINCT FROM ({new})").format(
            sets=sql.SQL(", ").join(sets),
            old=sql.SQL(", ").join(sql.SQL("d.{}").format(sql.Identifier(c)) for c in data_cols),
            new=sql.SQL(", ").join(
                sql.SQL("EXCLUDED.{}").format(sql.Identifier(c)) for c in data_cols
            ),
        )
        if data_cols
        else sql.SQL("DO NOTHING")
    )
    return sql.SQL(
        "WITH up AS ("
        " INSERT INTO {table} AS d ({cols}{stamp_col})"
        " SELECT {cols}{stamp_val} FROM _import_stage"
        " ON CONFLICT ({id}) {action}"
        " RETURNING (xmax = 0) AS inserted)"
        " SELECT count(*) FILTER (WHERE inserted), count(*) FILTER (WHERE NOT inserted) FROM up"
    ).format(
        table=source.qualified,
        cols=sql.SQL(", ").join(sql.Identifier(c) for c in cols),
        stamp_col=sql.SQL(", updated_at" if updated_at else ""),
        stamp_val=sql.SQL(", now()" if updated_at else ""),
        id=sql.Identifier(source.id_column),
        action=action,
    )


def upsert_rows(
    conn: psycopg.Connection[Any],
    source: Source,
    cols: list[str],
    rows: Iterable[Sequence[Any]],
    updated_at: bool,
) -> tuple[int, int]:
    """One chunk: COPY into a temp table shaped like the source (dropped at commit), then
    one upsert by the id column (``cols[0]``); (inserted, updated). Run it in a
    transaction of its own. Raises ``psycopg.errors.InvalidColumnReference`` when the id
    column has no unique constraint."""
    ident = [sql.Identifier(c) for c in cols]
    with conn.cursor() as cur:
        cur.execute("DROP TABLE IF EXISTS _import_stage")
        cur.execute(
            sql.SQL(
                "CREATE TEMP TABLE _import_stage ON COMMIT DROP AS SELECT * FROM {} WITH NO DATA"
            ).format(source.qualified)
        )
        copy_sql = sql.SQL("COPY _import_stage ({}) FROM STDIN").format(sql.SQL(", ").join(ident))
        with cur.copy(copy_sql) as copy:
            for values in rows:
                copy.write_row(values)
        counts = cur.execute(_upsert_from_stage(source, cols, updated_at)).fetchone()
    inserted, updated = counts or (0, 0)
    return int(inserted), int(updated)


def name_pairs(
    conn: psycopg.Connection[Any], source: Source, english: str, polish: str, limit: int
) -> list[tuple[str, str]]:
    """A deterministic sample of (English, Polish) values of live rows, distinct Polish ones."""
    en, pl = sql.Identifier("s", english), sql.Identifier("s", polish)
    rows = conn.execute(
        sql.SQL(
            "SELECT DISTINCT ON (md5({pl}::text)) {en}::text, {pl}::text FROM {t} AS s "
            "WHERE {eligible} AND {pl} IS NOT NULL AND {en} IS NOT NULL "
            "ORDER BY md5({pl}::text) LIMIT %s"
        ).format(en=en, pl=pl, t=source.qualified, eligible=source.eligible_sql()),
        (limit,),
    ).fetchall()
    return [(str(a), str(b)) for a, b in rows]


def sample_names(conn: psycopg.Connection[Any], source: Source, n: int) -> list[str]:
    """Names (the first text column) of ``n`` live products spread by a hash of their ids."""
    name = sql.Identifier("s", source.text_columns[0])
    rows = conn.execute(
        sql.SQL(
            "SELECT {name} FROM {src} AS s WHERE {eligible} AND {name} <> '' "
            "ORDER BY md5(s.{id}::text) LIMIT %s"
        ).format(name=name, **source.sql_parts()),
        (n,),
    ).fetchall()
    return [str(r[0]) for r in rows]


def text_page(
    conn: psycopg.Connection[Any], source: Source, after: int, size: int = 1000
) -> list[tuple[Any, ...]]:
    """Keyset page of live rows after id ``after``: (id, *text columns), in id order."""
    page = sql.SQL(
        "SELECT s.{id}, {cols} FROM {src} AS s WHERE {eligible} AND s.{id} > %s "
        "ORDER BY s.{id} LIMIT %s"
    ).format(
        cols=sql.SQL(", ").join(sql.Identifier("s", c) for c in source.text_columns),
        **source.sql_parts(),
    )
    return conn.execute(page, (after, size)).fetchall()


def append_to_text(
    conn: psycopg.Connection[Any], source: Source, column: str, suffix: str, every: int, seed: int
) -> int:
    """Append ``suffix`` to ``column`` of the live rows picked by ``(id * 7919 + seed) %
    every = 0`` (a reproducible share of the catalog); rows changed."""
    cur = conn.execute(
        sql.SQL(
            "UPDATE {src} AS s SET {col} = coalesce({col}, '') || %s "
            "WHERE {eligible} AND (s.{id} * 7919 + %s) %% %s = 0"
        ).format(col=sql.Identifier(column), **source.sql_parts()),
        (suffix, seed, every),
    )
    return cur.rowcount


def rename(
    conn: psycopg.Connection[Any], source: Source, ids: list[int], suffix: str, add: bool
) -> int:
    """Append ``suffix`` to the names of ``ids`` that lack it (``add``), or strip it from
    those that have it; rows changed."""
    name = sql.Identifier(source.text_columns[0])
    expr = (
        sql.SQL("{n} || %s").format(n=name)
        if add
        else sql.SQL("left({n}, -length(%s))").format(n=name)
    )
    cond = sql.SQL("{n} NOT LIKE %s" if add else "{n} LIKE %s").format(n=name)
    cur = conn.execute(
        sql.SQL("UPDATE {t} SET {n} = {e} WHERE {i} = ANY(%s) AND {c}").format(
            t=source.qualified, n=name, e=expr, i=sql.Identifier(source.id_column), c=cond
        ),
        (suffix, ids, "%" + suffix),
    )
    return cur.rowcount


def products_with_codes(conn: psycopg.Connection[Any], source: Source) -> list[tuple[Any, ...]]:
    """(id, part number, category, brand) of live products whose part number has a
    separator, in id order."""
    return conn.execute(
        sql.SQL(
            "SELECT s.{id}, s.part_number, s.category, s.brand FROM {src} AS s "
            "WHERE {eligible} AND s.part_number ~ '[^[:alnum:]]' ORDER BY s.{id}"
        ).format(**source.sql_parts()),
    ).fetchall()


def attributes(
    conn: psycopg.Connection[Any],
    source: Source,
    columns: Sequence[str],
    by: str,
    values: list[Any],
) -> list[dict[str, Any]]:
    """``product_id`` and ``columns`` of the products whose ``by`` column is any of
    ``values`` (live ones only unless ``by`` is the id column)."""
    live = by != source.id_column
    where = sql.SQL("{live} s.{by} = ANY(%s)").format(
        live=sql.SQL("{} AND").format(source.eligible_sql()) if live else sql.SQL(""),
        by=sql.Identifier(by),
    )
    query = sql.SQL("SELECT s.{id} AS product_id, {cols} FROM {t} AS s WHERE {where}").format(
        id=sql.Identifier(source.id_column),
        cols=sql.SQL(", ").join(sql.Identifier("s", c) for c in columns),
        t=source.qualified,
        where=where,
    )
    with conn.cursor(row_factory=dict_row) as cur:
        return cur.execute(query, (values,)).fetchall()
