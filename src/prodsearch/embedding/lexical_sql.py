"""SQL of the full-text side of the embeddings table: the weighted search document each
product gets, product codes normalised for exact matches, and the vocabulary table
(``search_terms``) that query analysis corrects words against.

Nothing here commits: the caller owns the transaction (docs/ARCHITECTURE.md,
"Transactions")."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from prodsearch.catalog.lexical import document_fields
from prodsearch.catalog.source import Source
from prodsearch.catalog.text import clean_text
from prodsearch.db.names import EMBEDDINGS, TERMS

TSV_SQL = sql.SQL(
    "setweight(to_tsvector('simple', coalesce({a}, '')), 'A') || "
    "setweight(to_tsvector('simple', coalesce({b}, '')), 'B')"
)


def weighted_columns(source: Source) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Search fields in weight A (fields named like *name*) and weight B (the rest)."""
    a = tuple(c for c in source.search_columns if "name" in c)
    return a, tuple(c for c in source.search_columns if c not in a)


def lexical_documents(
    conn: psycopg.Connection[Any], source: Source, ids: Sequence[int]
) -> dict[int, tuple[str, str]]:
    """product id -> (weight-A terms, weight-B terms), analysed in Python
    (:func:`prodsearch.catalog.lexical.document_fields`) — the same analysis queries get."""
    a_cols, b_cols = weighted_columns(source)
    cols = sql.SQL(", ").join(sql.Identifier("s", c) for c in a_cols + b_cols)
    rows = conn.execute(
        sql.SQL("SELECT s.{id}, {cols} FROM {t} AS s WHERE s.{id} = ANY(%s)").format(
            id=sql.Identifier(source.id_column), cols=cols, t=source.qualified
        ),
        (list(ids),),
    ).fetchall()
    out: dict[int, tuple[str, str]] = {}
    for pid, *values in rows:
        texts = [clean_text(v) for v in values]
        out[pid] = (document_fields(texts[: len(a_cols)]), document_fields(texts[len(a_cols) :]))
    return out


def code_key_sql(value: sql.Composable) -> sql.Composable:
    """A product code normalised for matching: lower case, letters and digits only."""
    return sql.SQL("nullif(lower(regexp_replace({}, '[^[:alnum:]]', '', 'g')), '')").format(value)


def code_keys_sql(source: Source) -> sql.Composable:
    if not source.code_columns:
        return sql.SQL("NULL::text[]")
    keys = [
        code_key_sql(sql.SQL("s.{}::text").format(sql.Identifier(c))) for c in source.code_columns
    ]
    return sql.SQL("array_remove(ARRAY[{}], NULL)").format(sql.SQL(", ").join(keys))


# one rebuild of search_terms at a time per database (held to the end of its transaction)
TERMS_LOCK_KEY = 0x7465726D  # 'term'


def rebuild_terms(conn: psycopg.Connection[Any]) -> int:
    """Refill ``search_terms`` (every indexed lexeme, with its document count) from the
    full-text column, computed into a temporary table first so that readers of the
    vocabulary never wait for the scan.

    Safe beside other writers of the table: two rebuilds (two watch workers, a worker and
    an embed) take turns on :data:`TERMS_LOCK_KEY`, so the second one's DELETE sees the
    first one's rows; a batch adding its new words meanwhile (:func:`add_terms_of`) meets
    an upsert, and both insert in term order, so neither waits on the other in a cycle."""
    lexemes = sql.SQL("SELECT search_tsv FROM {}").format(EMBEDDINGS).as_string(conn)
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS _terms (word text, ndoc integer)")
    conn.execute("TRUNCATE _terms")
    conn.execute("INSERT INTO _terms SELECT word, ndoc FROM ts_stat(%s)", (lexemes,))
    conn.execute("SELECT pg_advisory_xact_lock(%s)", (TERMS_LOCK_KEY,))
    conn.execute(sql.SQL("DELETE FROM {}").format(TERMS))
    count = conn.execute(
        sql.SQL(
            "INSERT INTO {} (term, ndoc) SELECT word, ndoc FROM _terms ORDER BY word "
            "ON CONFLICT (term) DO UPDATE SET ndoc = EXCLUDED.ndoc"
        ).format(TERMS)
    )
    return count.rowcount


def add_terms_of(conn: psycopg.Connection[Any], ids: Sequence[int]) -> int:
    """Add the lexemes of these products' full-text columns to ``search_terms`` when
    missing (document count 1 until the next full rebuild): a word that a change brings
    into the catalog is known to query analysis at once."""
    return conn.execute(
        sql.SQL(
            "INSERT INTO {terms} (term, ndoc) SELECT t, 1 FROM (SELECT DISTINCT"
            " unnest(tsvector_to_array(search_tsv)) AS t FROM {emb} WHERE product_id = ANY(%s))"
            " AS x ORDER BY t ON CONFLICT DO NOTHING"
        ).format(terms=TERMS, emb=EMBEDDINGS),
        (list(ids),),
    ).rowcount


def count_terms(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(TERMS)).fetchone()
    return int(row[0]) if row else 0
