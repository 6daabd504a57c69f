"""SQL of the embeddings table: what is stale or missing, the candidates of a sync, the writer
of embedded chunks, orphans and counts. The full-text side is in ``lexical_sql``, runs in
``runs_sql``, query maps in ``querymap_sql``.

Nothing here commits: the caller owns the transaction (docs/ARCHITECTURE.md,
"Transactions")."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector
from psycopg import sql

from prodsearch.catalog.source import Source
from prodsearch.config import EncoderMode
from prodsearch.db import hnsw
from prodsearch.db.names import EMBEDDINGS
from prodsearch.embedding.lexical_sql import TSV_SQL, code_keys_sql, lexical_documents


def source_hash_sql(source: Source) -> sql.Composable:
    """md5 over the raw text, search and code columns (ROW()::text keeps NULL and '' apart)
    plus the text-preparation signature."""
    cols = sql.SQL(", ").join(sql.Identifier("s", c) for c in source.hash_columns)
    return sql.SQL("md5(%(sig)s || ROW({cols})::text)").format(cols=cols)


def stale_sql(source: Source) -> sql.Composable:
    """True for a stored embedding (alias ``e``) of a source row (alias ``s``) that no
    longer matches it: raw text changed (``source_hash``), or another model or mode.
    Parameters: ``sig`` (preparation signature), ``model``, ``mode``. The one definition
    of "stale", for the sync plan and for status."""
    return sql.SQL(
        "(e.source_hash IS DISTINCT FROM {shash} OR e.model_name <> %(model)s"
        " OR e.mode <> %(mode)s)"
    ).format(shash=source_hash_sql(source))


def coverage_sql(source: Source) -> sql.Composed:
    """One row: live products, embeddings, and whether the HNSW index is valid (NULL when
    absent); parameters :data:`prodsearch.db.hnsw.INDEX_ROW_PARAMS`. For ``/health``."""
    return sql.SQL(
        "SELECT (SELECT count(*) FROM {src} AS s WHERE {eligible}), "
        "(SELECT count(*) FROM {emb}), ({validity})"
    ).format(emb=EMBEDDINGS, validity=sql.SQL(hnsw.VALIDITY_SQL), **source.sql_parts())


def count_missing_and_stale(
    conn: psycopg.Connection[Any], source: Source, signature: str, model: str, mode: EncoderMode
) -> tuple[int, int]:
    """Eligible rows without an embedding, and with a stale one (:func:`stale_sql`)."""
    query = sql.SQL(
        "SELECT count(*) FILTER (WHERE e.product_id IS NULL),"
        " count(*) FILTER (WHERE e.product_id IS NOT NULL AND {stale})"
        " FROM {src} AS s LEFT JOIN {emb} AS e ON e.product_id = s.{id} WHERE {eligible}"
    ).format(stale=stale_sql(source), emb=EMBEDDINGS, **source.sql_parts())
    row = conn.execute(query, {"sig": signature, "model": model, "mode": mode}).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def count_other_model_or_mode(conn: psycopg.Connection[Any], model: str, mode: EncoderMode) -> int:
    """Embeddings written by another model or in another mode."""
    row = conn.execute(
        sql.SQL("SELECT count(*) FROM {} WHERE model_name <> %s OR mode <> %s").format(EMBEDDINGS),
        (model, mode),
    ).fetchone()
    return int(row[0]) if row else 0


def count_altered(conn: psycopg.Connection[Any]) -> int:
    """Stored vectors that differ from the checksum written with them."""
    row = conn.execute(
        sql.SQL(
            "SELECT count(*) FROM {} WHERE embedding_md5 IS DISTINCT FROM md5(embedding::text)"
        ).format(EMBEDDINGS)
    ).fetchone()
    return int(row[0]) if row else 0


def sample_rows(conn: psycopg.Connection[Any], source: Source, n: int) -> list[tuple[Any, ...]]:
    """(id, vector, content hash, model, mode, *text columns) of ``n`` stored rows spread
    by a hash of their ids."""
    cols = sql.SQL(", ").join(sql.Identifier("s", c) for c in source.text_columns)
    return conn.execute(
        sql.SQL(
            "SELECT e.product_id, e.embedding, e.content_hash, e.model_name, e.mode, {cols} "
            "FROM {emb} AS e JOIN {src} AS s ON s.{id} = e.product_id "
            "ORDER BY md5(e.product_id::text) LIMIT %s"
        ).format(cols=cols, emb=EMBEDDINGS, **source.sql_parts()),
        (n,),
    ).fetchall()


def sample_ids(conn: psycopg.Connection[Any], n: int) -> list[int]:
    """``n`` embedded product ids spread by a hash of their ids."""
    rows = conn.execute(
        sql.SQL("SELECT product_id FROM {} ORDER BY md5(product_id::text) LIMIT %s").format(
            EMBEDDINGS
        ),
        (n,),
    ).fetchall()
    return [int(r[0]) for r in rows]


def vectors_with_columns(
    conn: psycopg.Connection[Any], source: Source, columns: Sequence[str]
) -> list[tuple[Any, ...]]:
    """(id, vector as real[], *columns of the source row) of every embedded product, by id."""
    cols = sql.SQL(", ").join(sql.Identifier("s", c) for c in columns)
    return conn.execute(
        sql.SQL(
            "SELECT e.product_id, e.embedding::real[], {cols} "
            "FROM {emb} AS e JOIN {src} AS s ON s.{id} = e.product_id ORDER BY 1"
        ).format(cols=cols, emb=EMBEDDINGS, **source.sql_parts())
    ).fetchall()


def set_embedding_dim(conn: psycopg.Connection[Any], dim: int) -> None:
    """Empty the table and change the vector dimension (a full refresh follows)."""
    conn.execute(sql.SQL("TRUNCATE {}").format(EMBEDDINGS))
    conn.execute(
        sql.SQL("ALTER TABLE {} ALTER COLUMN embedding TYPE vector({})").format(
            EMBEDDINGS, sql.Literal(dim)
        )
    )


def count_eligible(conn: psycopg.Connection[Any], source: Source) -> int:
    query = sql.SQL("SELECT count(*) FROM {t} AS s WHERE {eligible}").format(
        t=source.qualified, eligible=source.eligible_sql()
    )
    row = conn.execute(query).fetchone()
    return int(row[0]) if row else 0


def count_embeddings(conn: psycopg.Connection[Any]) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(EMBEDDINGS)).fetchone()
    return int(row[0]) if row else 0


def candidates(
    conn: psycopg.Connection[Any],
    source: Source,
    signature: str,
    model: str,
    mode: EncoderMode,
    full_refresh: bool,
    ids: Sequence[int] | None = None,
) -> Iterator[tuple[Any, ...]]:
    """Eligible rows whose raw text, model or mode differ from what is stored (or all);
    only among ``ids`` when given.

    Yields ``(id, source_hash, stored_content_hash, *text columns)`` in id order, streamed
    through a server-side cursor.
    """
    text_cols = sql.SQL(", ").join(sql.Identifier("s", c) for c in source.text_columns)
    query = sql.SQL(
        "SELECT s.{id}, {shash}, e.content_hash, {text_cols} "
        "FROM {t} AS s LEFT JOIN {emb} AS e ON e.product_id = s.{id} "
        "WHERE {eligible} AND (%(full)s OR e.product_id IS NULL OR {stale}) {among}"
        "ORDER BY s.{id}"
    ).format(
        id=sql.Identifier(source.id_column),
        shash=source_hash_sql(source),
        text_cols=text_cols,
        t=source.qualified,
        emb=EMBEDDINGS,
        eligible=source.eligible_sql(),
        stale=stale_sql(source),
        among=sql.SQL("AND s.{} = ANY(%(ids)s) ").format(sql.Identifier(source.id_column))
        if ids is not None
        else sql.SQL(""),
    )
    params = {
        "sig": signature,
        "full": full_refresh,
        "model": model,
        "mode": mode,
        "ids": list(ids or []),
    }
    with conn.cursor(name="prodsearch_candidates") as cur:
        cur.itersize = 5000
        cur.execute(query, params)
        yield from cur


def _derived_parts(source: Source) -> dict[str, sql.Composable]:
    """SQL pieces shared by the statements that write full-text and code columns."""
    return {
        "emb": EMBEDDINGS,
        "codes": code_keys_sql(source),
        "t": source.qualified,
        "id": sql.Identifier(source.id_column),
    }


def refresh_source_hashes(
    conn: psycopg.Connection[Any], source: Source, ids: Sequence[int], hashes: Sequence[str]
) -> None:
    """Rows whose raw columns changed but whose prepared text did not: record the new raw
    hash and refresh the full-text and code columns, keep the vector."""
    for start in range(0, len(ids), 5000):
        part = list(ids[start : start + 5000])
        docs = lexical_documents(conn, source, part)
        lex_a = [docs.get(pid, ("", ""))[0] for pid in part]
        lex_b = [docs.get(pid, ("", ""))[1] for pid in part]
        conn.execute(
            sql.SQL(
                "UPDATE {emb} AS e SET source_hash = v.h, search_tsv = {tsv}, code_keys = {codes}, "
                "updated_at = now() "
                "FROM unnest(%s::bigint[], %s::text[], %s::text[], %s::text[]) AS v(id, h, a, b) "
                "JOIN {t} AS s ON s.{id} = v.id WHERE e.product_id = v.id"
            ).format(
                tsv=TSV_SQL.format(a=sql.SQL("v.a"), b=sql.SQL("v.b")), **_derived_parts(source)
            ),
            (part, list(hashes[start : start + 5000]), lex_a, lex_b),
        )


def orphans_sql(source: Source) -> sql.Composed:
    return sql.SQL(
        "FROM {emb} AS e WHERE NOT EXISTS (SELECT 1 FROM {src} AS s "
        "WHERE s.{id} = e.product_id AND {eligible})"
    ).format(emb=EMBEDDINGS, **source.sql_parts())


def stale_ids(
    conn: psycopg.Connection[Any], source: Source, signature: str, model: str, mode: EncoderMode
) -> list[int]:
    """Eligible products without an embedding, or with a stale one (:func:`stale_sql`)."""
    rows = conn.execute(
        sql.SQL(
            "SELECT s.{id} FROM {src} AS s LEFT JOIN {emb} AS e ON e.product_id = s.{id} "
            "WHERE {eligible} AND (e.product_id IS NULL OR {stale})"
        ).format(stale=stale_sql(source), emb=EMBEDDINGS, **source.sql_parts()),
        {"sig": signature, "model": model, "mode": mode},
    ).fetchall()
    return [int(r[0]) for r in rows]


def orphan_ids(conn: psycopg.Connection[Any], source: Source) -> list[int]:
    """Embeddings of products that are soft-deleted or gone from the source."""
    rows = conn.execute(sql.SQL("SELECT e.product_id ") + orphans_sql(source)).fetchall()
    return [int(r[0]) for r in rows]


def count_orphans(conn: psycopg.Connection[Any], source: Source) -> int:
    row = conn.execute(sql.SQL("SELECT count(*) ") + orphans_sql(source)).fetchone()
    return int(row[0]) if row else 0


def delete_orphans(
    conn: psycopg.Connection[Any], source: Source, ids: Sequence[int] | None = None
) -> int:
    """Remove embeddings of products that are soft-deleted or gone from the source (only
    among ``ids`` when given)."""
    if ids is None:
        return conn.execute(sql.SQL("DELETE ") + orphans_sql(source)).rowcount
    among = sql.SQL(" AND e.product_id = ANY(%s)")
    return conn.execute(sql.SQL("DELETE ") + orphans_sql(source) + among, (list(ids),)).rowcount


class Writer:
    """Writes embedded chunks: binary COPY into a temp table, then one upsert. The caller
    owns the transaction: create the writer and write each chunk inside one."""

    def __init__(self, conn: psycopg.Connection[Any], dim: int, source: Source) -> None:
        self.conn = conn
        self.source = source
        self.upsert = sql.SQL(
            "INSERT INTO {emb} AS e (product_id, embedding, content_hash, source_hash, "
            "model_name, mode, search_tsv, code_keys, embedding_md5) "
            "SELECT st.product_id, st.embedding, st.content_hash, st.source_hash, %s, %s, "
            "{tsv}, {codes}, md5(st.embedding::text) "
            "FROM _embed_stage AS st JOIN {t} AS s ON s.{id} = st.product_id "
            "ON CONFLICT (product_id) DO UPDATE SET "
            "embedding = EXCLUDED.embedding, content_hash = EXCLUDED.content_hash, "
            "source_hash = EXCLUDED.source_hash, model_name = EXCLUDED.model_name, "
            "mode = EXCLUDED.mode, search_tsv = EXCLUDED.search_tsv, "
            "code_keys = EXCLUDED.code_keys, embedding_md5 = EXCLUDED.embedding_md5, "
            "updated_at = now()"
        ).format(
            tsv=TSV_SQL.format(a=sql.SQL("st.lex_a"), b=sql.SQL("st.lex_b")),
            **_derived_parts(source),
        )
        register_vector(conn)
        conn.execute(
            f"CREATE TEMP TABLE IF NOT EXISTS _embed_stage (product_id bigint, "
            f"embedding vector({int(dim)}), content_hash text, source_hash text, "
            "lex_a text, lex_b text)"
        )

    def write(
        self,
        ids: Sequence[int],
        vectors: np.ndarray,
        content_hashes: Sequence[str],
        source_hashes: Sequence[str],
        model: str,
        mode: EncoderMode,
    ) -> int:
        with self.conn.cursor() as cur:
            docs = lexical_documents(self.conn, self.source, ids)
            cur.execute("TRUNCATE _embed_stage")
            with cur.copy(
                "COPY _embed_stage (product_id, embedding, content_hash, source_hash, lex_a, "
                "lex_b) FROM STDIN WITH (FORMAT BINARY)"
            ) as copy:
                copy.set_types(["int8", "vector", "text", "text", "text", "text"])
                for row in zip(ids, vectors, content_hashes, source_hashes, strict=True):
                    copy.write_row((*row, *docs.get(row[0], ("", ""))))
            cur.execute(self.upsert, (model, mode))
            return cur.rowcount
