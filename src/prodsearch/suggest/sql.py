"""SQL of search-as-you-type: one place. Values are parameters; identifiers composed."""

from __future__ import annotations

from typing import Any

import psycopg
from psycopg import sql

from prodsearch.catalog.source import Source
from prodsearch.db.names import SUGGESTIONS

SAMPLE_NAMES = 200  # names per category read to find its product type


def _col(source: Source, column: str | None) -> sql.Composable:
    if column and column in source.columns:
        return sql.SQL("s.{}::text").format(sql.Identifier(column))
    return sql.SQL("NULL::text")


def category_samples(
    conn: psycopg.Connection[Any],
    source: Source,
    category: str,
    brand: str,
    polish_name: str,
    only: list[str] | None = None,
) -> list[tuple[str, str | None, str | None, str | None]]:
    """(category, name, Polish name, brand) of the first products of each category (of
    ``only`` those categories when given), live ones."""
    statement = sql.SQL(
        "SELECT c, n, p, b FROM (SELECT {cat} AS c, {name} AS n, {pl} AS p, {brand} AS b,"
        " row_number() OVER (PARTITION BY {cat} ORDER BY s.{id}) AS r FROM {src} AS s"
        " WHERE {eligible} AND {cat} IS NOT NULL AND ({cat} = ANY(%(only)s) OR %(all)s)) AS x"
        " WHERE r <= %(n)s"
    ).format(
        cat=_col(source, category),
        name=_col(source, source.text_columns[0]),
        pl=_col(source, polish_name),
        brand=_col(source, brand),
        **source.sql_parts(),
    )
    params = {"only": only or [], "all": only is None, "n": SAMPLE_NAMES}
    return [(r[0], r[1], r[2], r[3]) for r in conn.execute(statement, params)]


def counts(
    conn: psycopg.Connection[Any], source: Source, columns: list[str | None]
) -> dict[tuple[str, ...], int]:
    """Live products per combination of the given columns' values (all non-empty)."""
    cols = [_col(source, c) for c in columns]
    if any(c.as_string() == "NULL::text" for c in cols):
        return {}
    statement = sql.SQL(
        "SELECT {cols}, count(*) FROM {src} AS s WHERE {eligible} AND {present} GROUP BY {keys}"
    ).format(
        cols=sql.SQL(", ").join(cols),
        present=sql.SQL(" AND ").join(sql.SQL("btrim({}) <> ''").format(c) for c in cols),
        keys=sql.SQL(", ").join(sql.Literal(i + 1) for i in range(len(cols))),
        **source.sql_parts(),
    )
    return {tuple(r[:-1]): int(r[-1]) for r in conn.execute(statement)}


def values_of(
    conn: psycopg.Connection[Any], source: Source, columns: list[str | None], ids: list[int]
) -> set[str]:
    """The distinct non-empty values the given columns hold for these products."""
    parts = [_col(source, c) for c in columns if c and c in source.columns]
    if not parts or not ids:
        return set()
    statement = sql.SQL(
        "SELECT DISTINCT v FROM {src} AS s, LATERAL unnest(ARRAY[{cols}]) AS v"
        " WHERE s.{id} = ANY(%s) AND {eligible} AND btrim(v) <> ''"
    ).format(cols=sql.SQL(", ").join(parts), **source.sql_parts())
    return {r[0] for r in conn.execute(statement, (ids,))}


def known(conn: psycopg.Connection[Any], folded: list[str]) -> set[str]:
    """Which of these folded phrases are suggested already."""
    rows = conn.execute(
        sql.SQL("SELECT folded FROM {} WHERE folded = ANY(%s)").format(SUGGESTIONS), (folded,)
    )
    return {r[0] for r in rows}


def replace_all(conn: psycopg.Connection[Any], rows: list[tuple[Any, ...]]) -> None:
    """Every suggestion anew (folded, phrase, kind, lang, products); the caller commits."""
    conn.execute(sql.SQL("DELETE FROM {}").format(SUGGESTIONS))
    insert(conn, rows)
    conn.execute(sql.SQL("ANALYZE {}").format(SUGGESTIONS))


def insert(conn: psycopg.Connection[Any], rows: list[tuple[Any, ...]]) -> None:
    """Add suggestions, keeping any already there."""
    with conn.cursor() as cur:
        cur.executemany(
            sql.SQL(
                "INSERT INTO {} (folded, phrase, kind, lang, products) VALUES (%s, %s, %s, %s, %s)"
                " ON CONFLICT (folded) DO NOTHING"
            ).format(SUGGESTIONS),
            rows,
        )


def count() -> sql.Composed:
    return sql.SQL("SELECT count(*) FROM {}").format(SUGGESTIONS)


def by_prefix() -> sql.Composed:
    """Completions whose phrase, or one of its words, starts with the typed text (params
    ``start``, ``word``: LIKE patterns; ``n``): phrase starts first, then by products."""
    return sql.SQL(
        "SELECT phrase, kind, lang, products FROM {t}"
        " WHERE folded LIKE %(start)s OR folded LIKE %(word)s"
        " ORDER BY (folded LIKE %(start)s) DESC, products DESC, length(folded), folded"
        " LIMIT %(n)s"
    ).format(t=SUGGESTIONS)


def by_similarity() -> sql.Composed:
    """Completions like the typed text, typos and all (pg_trgm word similarity of ``q`` at
    least ``pg_trgm.word_similarity_threshold``, 0.6: the ``<%`` operator the trigram index
    serves), most alike first, then by products."""
    return sql.SQL(
        "SELECT phrase, kind, lang, products FROM {t}"
        " WHERE %(q)s <%% folded"
        " ORDER BY word_similarity(%(q)s, folded) DESC, products DESC, folded LIMIT %(n)s"
    ).format(t=SUGGESTIONS)


# for the similarity lookup's transaction: the trigram index, not the scan computing the
# similarity of every phrase that the planner prefers for so small a table, and which is
# slower (docs/BENCHMARKS.md, "Constraints in the query, and search-as-you-type")
LOCAL_INDEX_ONLY = "SELECT set_config('enable_seqscan', 'off', true)"
