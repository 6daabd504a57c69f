"""SQL for search — one place. All values are parameters; identifiers are composed.

Every query reads ``product_embeddings`` (alias ``e``) joined to the source table (alias
``s``) so soft-deleted products never show, and filters apply to live source values.
The nearest-neighbour leg orders by the same expression the HNSW index was built on and
runs with ``hnsw.iterative_scan = relaxed_order`` inside a materialised CTE (then sorted
exactly), so a selective filter still fills ``limit`` results when enough products match.
"""

from __future__ import annotations

from psycopg import sql

from prodsearch.catalog.source import Source
from prodsearch.embedding.store import EMBEDDINGS, code_key_sql

DISPLAY = ("name", "polish_name", "category", "brand", "price", "in_stock")


def display_columns(source: Source) -> sql.Composable:
    cols = []
    for col in DISPLAY:
        if col in source.columns:
            cols.append(sql.SQL("s.{} AS {}").format(sql.Identifier(col), sql.Identifier(col)))
        elif col == "name":
            cols.append(sql.SQL("s.{} AS name").format(sql.Identifier(source.text_columns[0])))
        else:
            cols.append(sql.SQL("NULL AS {}").format(sql.Identifier(col)))
    return sql.SQL(", ").join(cols)


def _base(source: Source) -> dict[str, sql.Composable]:
    """Names every query here may use (``sql.SQL.format`` ignores the ones it does not)."""
    return {
        "emb": EMBEDDINGS,
        "src": source.qualified,
        "id": sql.Identifier(source.id_column),
        "eligible": source.eligible_sql(),
        "display": display_columns(source),
    }


def _candidates(source: Source, where: sql.Composable, exact: bool) -> sql.Composed:
    """FROM/WHERE of the nearest-neighbour leg. Index path: embeddings joined to the live
    source rows (the HNSW scan drives, the join filters). Exact path, for a filter that
    matches few products: the matching ids (an index-only scan with the covering filter
    indexes) become one array and the primary key fetches those rows in a single sorted
    pass; the caller orders by an expression no index serves, so every match is scored."""
    if exact:
        text = (
            " FROM {emb} AS e WHERE e.product_id = ANY(ARRAY("
            "  SELECT s.{id}::bigint FROM {src} AS s WHERE {eligible} AND ({where})))"
        )
    else:
        text = (
            " FROM {emb} AS e JOIN {src} AS s ON s.{id} = e.product_id"
            " WHERE {eligible} AND ({where})"
        )
    return sql.SQL(text).format(where=where, **_base(source))


def nearest(source: Source, order: sql.Composable, where: sql.Composable,
            exact: bool = False) -> sql.Composed:  # fmt: skip
    """Semantic / filtered / similar: params q, k, limit, offset (+ filter params, exclude).
    ``exact``: see :func:`_candidates`."""
    return sql.SQL(
        "WITH nn AS MATERIALIZED ("
        " SELECT e.product_id, {order} AS distance{candidates}"
        " AND e.product_id <> %(exclude)s"
        " ORDER BY distance LIMIT %(k)s)"
        " SELECT nn.product_id, {display}, 1 - nn.distance AS score"
        " FROM nn JOIN {src} AS s ON s.{id} = nn.product_id"
        " ORDER BY nn.distance, nn.product_id LIMIT %(limit)s OFFSET %(offset)s"
    ).format(order=order, candidates=_candidates(source, where, exact), **_base(source))


def hybrid(source: Source, order: sql.Composable, where: sql.Composable,
           exact: bool = False) -> sql.Composed:  # fmt: skip
    """Semantic + full-text + exact code match, fused by reciprocal rank fusion.

    params: q (vector), text, k, rrf_k, w_sem, w_lex, w_code, lex_cap, limit, offset.
    A product scores sum(w / (rrf_k + rank)) over the legs it appears in; an exact
    SKU / part-number match adds w_code (large), so that product comes first.
    """
    return sql.SQL(
        "WITH tq AS (SELECT websearch_to_tsquery('simple', %(text)s) AS q),"
        " sem AS MATERIALIZED ("
        " SELECT product_id, row_number() OVER (ORDER BY distance, product_id) AS r FROM ("
        "  SELECT e.product_id, {order} AS distance{candidates}"
        "  ORDER BY distance LIMIT %(k)s) AS x),"
        " lex AS MATERIALIZED ("
        " SELECT product_id, row_number() OVER (ORDER BY rank DESC, product_id) AS r FROM ("
        "  SELECT m.product_id, ts_rank_cd(m.search_tsv, tq.q) AS rank FROM ("
        "   SELECT e.product_id, e.search_tsv"
        "   FROM {emb} AS e JOIN {src} AS s ON s.{id} = e.product_id, tq"
        "   WHERE e.search_tsv @@ tq.q AND {eligible} AND ({where}) LIMIT %(lex_cap)s) AS m, tq"
        "  ORDER BY rank DESC LIMIT %(k)s) AS y),"
        " code AS MATERIALIZED ("
        "  SELECT e.product_id FROM {emb} AS e JOIN {src} AS s ON s.{id} = e.product_id"
        "  WHERE e.code_keys @> ARRAY[{key}] AND {eligible} AND ({where}) LIMIT 10),"
        " fused AS ("
        "  SELECT product_id, sum(score) AS score, min(leg) AS best_leg FROM ("
        "   SELECT product_id, %(w_sem)s::float8 / (%(rrf_k)s + r) AS score, 2 AS leg FROM sem"
        "   UNION ALL SELECT product_id, %(w_lex)s::float8 / (%(rrf_k)s + r), 1 FROM lex"
        "   UNION ALL SELECT product_id, %(w_code)s::float8, 0 FROM code) AS u"
        "  GROUP BY product_id)"
        " SELECT f.product_id, {display}, f.score"
        " FROM fused AS f JOIN {src} AS s ON s.{id} = f.product_id"
        " ORDER BY f.score DESC, f.best_leg, f.product_id LIMIT %(limit)s OFFSET %(offset)s"
    ).format(
        order=order, where=where, candidates=_candidates(source, where, exact),
        key=code_key_sql(sql.SQL("%(text)s::text")), **_base(source),
    )  # fmt: skip


def match_estimate(source: Source, where: sql.Composable) -> sql.Composed:
    """The planner's row estimate for a filter (plans, runs nothing): run it unprepared so
    the estimate uses the actual parameter values."""
    return sql.SQL(
        "EXPLAIN (FORMAT JSON) SELECT 1 FROM {src} AS s WHERE {eligible} AND ({where})"
    ).format(where=where, **_base(source))


def stored_vector() -> sql.Composed:
    return sql.SQL("SELECT embedding FROM {} WHERE product_id = %s").format(EMBEDDINGS)


def product_exists(source: Source) -> sql.Composed:
    return sql.SQL("SELECT {eligible} FROM {src} AS s WHERE s.{id} = %s").format(**_base(source))
