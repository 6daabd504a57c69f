"""SQL for search — one place. All values are parameters; identifiers are composed.

Every query reads ``product_embeddings`` (alias ``e``) joined to the source table (alias
``s``) so soft-deleted products never show, and filters apply to live source values.
The nearest-neighbour leg orders by the same expression the HNSW index was built on and
runs with ``hnsw.iterative_scan = relaxed_order`` inside a materialised CTE (then sorted
exactly), so a selective filter still fills ``limit`` results when enough products match.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import psycopg
from psycopg import sql

from prodsearch.catalog.source import Source
from prodsearch.db.names import EMBEDDINGS, TERMS
from prodsearch.embedding.lexical_sql import code_key_sql
from prodsearch.search.rows import DISPLAY

# named parameters of a search statement, bound by psycopg (values of any SQL type)
SqlParams = dict[str, object]
NO_MASK = sql.SQL("NULL::int")  # no understood constraints to check


# read for each result's description snippet (search.highlight), not shown as they are
SNIPPET_COLUMNS = ("description", "polish_description")


def display_columns(source: Source) -> sql.Composable:
    cols = []
    for col in (*DISPLAY, *SNIPPET_COLUMNS):
        if col in source.columns:
            cols.append(sql.SQL("s.{} AS {}").format(sql.Identifier(col), sql.Identifier(col)))
        elif col == "name":
            cols.append(sql.SQL("s.{} AS name").format(sql.Identifier(source.text_columns[0])))
        else:
            cols.append(sql.SQL("NULL AS {}").format(sql.Identifier(col)))
    return sql.SQL(", ").join(cols)


def _base(source: Source) -> dict[str, sql.Composable]:
    """Names every query here may use (``sql.SQL.format`` ignores the ones it does not)."""
    return {"emb": EMBEDDINGS, "display": display_columns(source), **source.sql_parts()}


def _candidates(
    source: Source, where: sql.Composable, exact: bool, table: sql.Composable = EMBEDDINGS
) -> sql.Composed:
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
    return sql.SQL(text).format(where=where, **{**_base(source), "emb": table})


def vehicle_match(source: Source, column: str) -> sql.Composable:
    """1 when the product fits one of the query's vehicles (param ``vehicles``), else 0 —
    a product without a vehicle (NULL: a universal part) included, which ``=`` alone would
    turn into a NULL match and so a NULL score."""
    if column not in source.columns:
        return sql.SQL("0")
    return sql.SQL("coalesce((s.{} = ANY(%(vehicles)s::text[]))::int, 0)").format(
        sql.Identifier(column)
    )


def nearest(
    source: Source,
    order: sql.Composable,
    where: sql.Composable,
    exact: bool = False,
    vehicle_column: str = "vehicle",
    table: sql.Composable = EMBEDDINGS,
    mask: sql.Composable = NO_MASK,
) -> sql.Composed:
    """Semantic / filtered / similar: params q, k, exclude, vehicles, w_vehicle (+ filter
    params). Returns the ``k`` nearest, best first: similarity plus the vehicle boost.
    ``exact``: see :func:`_candidates`; ``table``: another table of the embeddings' shape
    (a benchmark's scratch copy); ``mask``: which understood constraints each product
    meets (:func:`constraint_mask`)."""
    return sql.SQL(
        "WITH nn AS MATERIALIZED ("
        " SELECT e.product_id, {order} AS distance{candidates}"
        " AND e.product_id <> %(exclude)s"
        " ORDER BY distance LIMIT %(k)s)"
        " SELECT nn.product_id, {display},"
        " 1 - nn.distance + %(w_vehicle)s::float8 * {vmatch} AS score,"
        " nn.distance, row_number() OVER (ORDER BY nn.distance, nn.product_id) AS semantic_rank,"
        " {vmatch} AS vehicle_match, {mask} AS constraint_mask"
        " FROM nn JOIN {src} AS s ON s.{id} = nn.product_id"
        " ORDER BY score DESC, nn.product_id"
    ).format(
        order=order,
        candidates=_candidates(source, where, exact, table),
        vmatch=vehicle_match(source, vehicle_column),
        mask=mask,
        **_base(source),
    )


# hybrid(): the three legs' candidates (see its docstring)
_HYBRID = (
    "WITH tq AS (SELECT to_tsquery('simple', nullif(%(strict)s, '')) AS strict,"
    "  to_tsquery('simple', nullif(%(loose)s, '')) AS loose{slot_queries}),"
    " sem AS MATERIALIZED ("
    " SELECT product_id, distance, row_number() OVER (ORDER BY distance, product_id) AS r"
    " FROM (SELECT e.product_id, {order} AS distance{candidates}"
    "  ORDER BY distance LIMIT %(k)s) AS x),"
    " strict_hits AS MATERIALIZED ("
    "  SELECT e.product_id, e.search_tsv{lex_from} e.search_tsv @@ tq.strict"
    "  LIMIT %(lex_cap)s),"
    " hits AS ("
    "  SELECT product_id, search_tsv FROM strict_hits UNION ALL"
    "  SELECT e.product_id, e.search_tsv{lex_from} NOT EXISTS (SELECT 1 FROM strict_hits)"
    "   AND e.search_tsv @@ tq.loose LIMIT %(lex_cap)s),"
    " lex AS MATERIALIZED ("
    " SELECT product_id, rank, row_number() OVER (ORDER BY rank DESC, product_id) AS r"
    " FROM (SELECT h.product_id, {bm25} AS rank"
    "  FROM hits AS h, tq, LATERAL (SELECT {slot_tf}"
    "   %(k1)s::float8 * (1 - %(b)s::float8 + %(b)s::float8 * length(h.search_tsv)"
    "    / %(mean_length)s::float8) AS norm) AS t"
    "  ORDER BY rank DESC, h.product_id LIMIT %(k)s) AS y),"
    " code AS MATERIALIZED ("
    "  SELECT e.product_id FROM {emb} AS e JOIN {src} AS s ON s.{id} = e.product_id"
    "  WHERE e.code_keys @> ARRAY[{key}] AND {eligible} AND ({where}) LIMIT 10),"
    " legs AS ("
    "  SELECT product_id, min(sem_r) AS sem_r, min(distance) AS distance,"
    "   min(lex_r) AS lex_r, max(lex_rank) AS lex_rank, bool_or(code) AS code FROM ("
    "   SELECT product_id, r AS sem_r, distance, NULL::bigint AS lex_r,"
    "    NULL::float8 AS lex_rank, false AS code FROM sem"
    "   UNION ALL SELECT product_id, NULL, NULL, r, rank, false FROM lex"
    "   UNION ALL SELECT product_id, NULL, NULL, NULL, NULL, true FROM code) AS u"
    "  GROUP BY product_id)"
    " SELECT l.product_id, {display}, l.distance, l.sem_r AS semantic_rank,"
    " l.lex_r AS lexical_rank, l.lex_rank AS lexical_score, l.code AS code_match,"
    " {vmatch} AS vehicle_match, {mask} AS constraint_mask,"
    " NOT EXISTS (SELECT 1 FROM strict_hits) AS lexical_loose"
    " FROM legs AS l JOIN {src} AS s ON s.{id} = l.product_id WHERE {eligible}"
)


def _bm25(slots: int) -> tuple[sql.Composable, sql.Composable, sql.Composable]:
    """The per-slot tsqueries (name / description), their term frequencies and the BM25
    sum over ``slots`` slots (:mod:`prodsearch.search.bm25`); params ``slot_names``,
    ``slot_descriptions`` (tsquery texts), ``idf`` (float8[]), ``desc_tf``, ``k1``, ``b``,
    ``mean_length``."""
    queries, tfs, terms = [], [], []
    for i in range(1, slots + 1):
        queries.append(
            sql.SQL(
                ", to_tsquery('simple', (%(slot_names)s::text[])[{i}]) AS a{i},"
                " to_tsquery('simple', (%(slot_descriptions)s::text[])[{i}]) AS b{i}"
            ).format(i=sql.Literal(i))
        )
        tfs.append(
            sql.SQL(
                "(h.search_tsv @@ tq.a{i})::int"
                " + %(desc_tf)s::float8 * (h.search_tsv @@ tq.b{i})::int AS tf{i},"
            ).format(i=sql.Literal(i))
        )
        terms.append(
            sql.SQL(
                "(%(idf)s::float8[])[{i}] * t.tf{i} * (%(k1)s::float8 + 1) / (t.tf{i} + t.norm)"
            ).format(i=sql.Literal(i))
        )
    bm25 = sql.SQL(" + ").join(terms) if terms else sql.SQL("0::float8")
    return sql.SQL("").join(queries), sql.SQL(" ").join(tfs), bm25


def hybrid(
    source: Source,
    order: sql.Composable,
    where: sql.Composable,
    exact: bool = False,
    vehicle_column: str = "vehicle",
    filtered: bool = True,
    slots: int = 0,
    mask: sql.Composable = NO_MASK,
) -> sql.Composed:
    """The candidates of hybrid search from its three legs, unranked: the ``k`` semantic
    nearest, the ``k`` best full-text matches by BM25 over ``slots`` query slots, and up to
    10 exact code matches, each row with its rank in every leg it appears in
    (:func:`prodsearch.search.fusion.fuse` ranks them).

    params: q (vector), text, strict / loose (tsquery texts, '' for none), the BM25 params
    of :func:`_bm25`, k, vehicles, lex_cap. The full-text leg takes the strict (every word)
    query, or the loose (any word) one when the strict one matches nothing
    (``lexical_loose``), at most ``lex_cap`` matches, and ranks them by BM25.
    """
    slot_queries, slot_tf, bm25 = _bm25(slots)
    return sql.SQL(_HYBRID).format(
        order=order,
        where=where,
        candidates=_candidates(source, where, exact),
        key=code_key_sql(sql.SQL("%(text)s::text")),
        vmatch=vehicle_match(source, vehicle_column),
        lex_from=_lexical_from(source, where, filtered),
        slot_queries=slot_queries,
        slot_tf=slot_tf,
        bm25=bm25,
        mask=mask,
        **_base(source),
    )


def _lexical_from(source: Source, where: sql.Composable, filtered: bool) -> sql.Composed:
    """FROM … WHERE of the full-text leg, up to its own condition. With a filter, every
    hit is checked against the live source row before it counts; without one, hits are
    taken straight from the GIN index and deleted products are dropped after fusion
    (one primary-key lookup per fused row instead of one per full-text hit)."""
    if filtered:
        text = (
            " FROM {emb} AS e JOIN {src} AS s ON s.{id} = e.product_id, tq"
            " WHERE {eligible} AND ({where}) AND"
        )
    else:
        text = " FROM {emb} AS e, tq WHERE"
    return sql.SQL(text).format(where=where, **_base(source))


def match_estimate(source: Source, where: sql.Composable) -> sql.Composed:
    """The planner's row estimate for a filter (plans, runs nothing): run it unprepared so
    the estimate uses the actual parameter values. Deleted products are not excluded: the
    planner has no statistics for the soft-delete expression and would halve every
    estimate; the few deleted rows make it a slight overestimate instead."""
    return sql.SQL("EXPLAIN (FORMAT JSON) SELECT 1 FROM {src} AS s WHERE {where}").format(
        where=where, **_base(source)
    )


def count_matches(source: Source, where: sql.Composable) -> sql.Composed:
    """How many embedded live products pass a filter, counted up to ``k`` (params ``k``,
    ``exclude``: the product a "similar" search starts from): whether a short page of a
    filtered index walk is all there is."""
    return sql.SQL(
        "SELECT count(*) FROM (SELECT 1 FROM {src} AS s JOIN {emb} AS e"
        " ON e.product_id = s.{id} WHERE {eligible} AND ({where})"
        " AND s.{id} <> %(exclude)s LIMIT %(k)s) AS m"
    ).format(where=where, **_base(source))


def neighbourhood_passes(source: Source, where: sql.Composable) -> sql.Composed:
    """Which of the given products (param ``probe_ids``: the probes nearest to a query)
    a filter passes: how the query's neighbourhood passes it (:mod:`~.filterplan`)."""
    return sql.SQL(
        "SELECT s.{id} FROM {src} AS s WHERE s.{id} = ANY(%(probe_ids)s::bigint[])"
        " AND {eligible} AND ({where})"
    ).format(where=where, **_base(source))


def known_terms() -> sql.Composed:
    """Every indexed term with its document count."""
    return sql.SQL("SELECT term, ndoc FROM {}").format(TERMS)


def probe_vectors(source: Source) -> sql.Composed:
    """An even sample of the stored vectors of live products (every ``step``-th product id
    by hash, at most ``n``), with their categories: the probes of
    :mod:`prodsearch.search.probes`. The ids come from the primary key's index alone; only
    the sample's rows are read. A deleted product is no probe: the index never returns it,
    so it would prove a miss that is none."""
    return sql.SQL(
        "WITH ids AS (SELECT product_id FROM {emb}"
        " WHERE abs(hashint8(product_id)) %% %(step)s = 0 LIMIT %(n)s)"
        " SELECT e.product_id, e.embedding, {category}::text FROM {emb} AS e"
        " JOIN ids USING (product_id) JOIN {src} AS s ON s.{id} = e.product_id"
        " WHERE {eligible} ORDER BY e.product_id"
    ).format(
        category=sql.SQL("s.category") if "category" in source.columns else sql.SQL("NULL"),
        **_base(source),
    )


def corpus_size() -> sql.Composed:
    """Products with a full-text column, and the mean length of that column in lexemes
    over the 20,000 lowest product ids (cheap to keep current; the same rows in every
    process: a sample in scan order moves with PostgreSQL's synchronized scans of a large
    table, and BM25's length norm, and so near-ties, would move with it)."""
    return sql.SQL(
        "SELECT (SELECT count(*) FROM {emb} WHERE search_tsv IS NOT NULL),"
        " (SELECT avg(length(search_tsv)) FROM (SELECT search_tsv FROM {emb}"
        "  WHERE search_tsv IS NOT NULL ORDER BY product_id LIMIT 20000) AS x)"
    ).format(emb=EMBEDDINGS)


def closest_terms() -> sql.Composed:
    """For each word (param: text[]): the word itself when the index has it now (a term
    added since the vocabulary was loaded: a new brand or part number), else the indexed
    word most like it by trigram similarity, at least ``min_sim`` (NULL when none)."""
    return sql.SQL(
        "SELECT w, coalesce((SELECT t.term FROM {terms} AS t WHERE t.term = w),"
        " (SELECT t.term FROM {terms} AS t WHERE t.term !~ '[0-9]' AND t.term %% w"
        " AND similarity(t.term, w) >= %(min_sim)s"
        " ORDER BY similarity(t.term, w) DESC, t.ndoc DESC, t.term LIMIT 1))"
        " FROM unnest(%(words)s::text[]) AS w"
    ).format(terms=TERMS)


# ---------------------------------------------------------------- understood constraints


def constraint_condition(
    source: Source, kind: str, column: str, param: str
) -> sql.Composable | None:
    """A product meets an understood constraint (:mod:`~prodsearch.search.constraints`):
    ``kind`` "one" (the column equals the param), "any" (one of a text[] param) or
    "words" (the column holds every pattern of a text[] param, ``%front%``); None when
    the table has no such column."""
    if column not in source.columns:
        return None
    col = sql.Identifier(column)
    text = {
        "one": "s.{c} = %({p})s",
        "any": "s.{c} = ANY(%({p})s::text[])",
        "words": "s.{c} ILIKE ALL (%({p})s::text[])",
    }[kind]
    return sql.SQL(text).format(c=col, p=sql.SQL(param))


def all_of(conditions: list[sql.Composable]) -> sql.Composable:
    if not conditions:
        return sql.SQL("TRUE")
    return sql.SQL(" AND ").join(sql.SQL("({})").format(c) for c in conditions)


def constraint_mask(conditions: list[sql.Composable]) -> sql.Composable:
    """Bit ``i`` set when the product meets condition ``i`` (NULL columns meet none)."""
    if not conditions:
        return NO_MASK
    return sql.SQL(" + ").join(
        sql.SQL("coalesce(({}), false)::int * {}").format(c, sql.Literal(1 << i))
        for i, c in enumerate(conditions)
    )


def value_counts(source: Source, column: str) -> sql.Composed | None:
    """Live products per value of a column (brands, engines, positions, currencies)."""
    if column not in source.columns:
        return None
    return sql.SQL(
        "SELECT s.{c}::text, count(*) FROM {src} AS s"
        " WHERE s.{c} IS NOT NULL AND btrim(s.{c}::text) <> '' AND {eligible} GROUP BY 1"
    ).format(c=sql.Identifier(column), **_base(source))


def vehicle_names(source: Source, column: str) -> sql.Composed | None:
    if column not in source.columns:
        return None
    return sql.SQL(
        "SELECT DISTINCT s.{c}::text FROM {src} AS s WHERE s.{c} IS NOT NULL AND {eligible}"
    ).format(c=sql.Identifier(column), **_base(source))


def stored_vector() -> sql.Composed:
    return sql.SQL("SELECT embedding FROM {} WHERE product_id = %s").format(EMBEDDINGS)


def product_exists(source: Source) -> sql.Composed:
    return sql.SQL("SELECT {eligible} FROM {src} AS s WHERE s.{id} = %s").format(**_base(source))


# ---------------------------------------------------------------- session settings

# once per pooled connection: the default ef_search, iterative index scans (a filtered
# query keeps scanning until it has k rows) and no parallel workers (on a few cores they
# cost a query more than they save)
# a search session's settings: its ef_search, iterative index scans, serial plans, and
# sequential scans that start at the table's first page (a synchronized scan starts where
# another one is, so a LIMIT without ORDER BY over a large table — the full-text leg's
# capped hits — would take other rows from run to run, and results would move with it)
SESSION_SETTINGS = (
    "SELECT set_config('hnsw.ef_search', %s, false), "
    "set_config('hnsw.iterative_scan', 'relaxed_order', false), "
    "set_config('max_parallel_workers_per_gather', '0', false), "
    "set_config('synchronize_seqscans', 'off', false)"
)
# another ef_search for one transaction
LOCAL_EF_SEARCH = "SELECT set_config('hnsw.ef_search', %s, true)"


def facet_totals(source: Source, where: sql.Composable, keys: Sequence[str]) -> sql.Composed:
    """Per facet key (a column), its values' counts over every live product matching
    ``where``, plus one row (key NULL) with the total: ``(key, value, count)`` rows."""
    parts = [
        sql.SQL(
            "SELECT {k}::text, s.{c}::text, count(*) FROM {src} AS s"
            " WHERE {eligible} AND ({where}) AND s.{c} IS NOT NULL GROUP BY s.{c}"
        ).format(k=sql.Literal(key), c=sql.Identifier(key), where=where, **_base(source))
        for key in keys
    ]
    parts.append(
        sql.SQL(
            "SELECT NULL::text, NULL::text, count(*) FROM {src} AS s WHERE {eligible} AND ({where})"
        ).format(where=where, **_base(source))
    )
    return sql.SQL(" UNION ALL ").join(parts)


def facet_values(source: Source, column: str, cap: int) -> sql.Composed:
    """Up to ``cap`` distinct values of a filter column among live products, sorted."""
    return sql.SQL(
        "SELECT DISTINCT {c}::text FROM {src} AS s WHERE {c} IS NOT NULL AND {eligible} "
        "ORDER BY 1 LIMIT {n}"
    ).format(c=sql.Identifier(column), n=sql.Literal(cap), **_base(source))


# ---------------------------------------------------------------- neighbours (sync callers)


def approximate_neighbours(
    conn: psycopg.Connection[Any],
    source: Source,
    vector: Any,
    order: sql.Composable,
    ef_search: int,
    k: int = 10,
    table: sql.Composable = EMBEDDINGS,
) -> list[int]:
    """The API's nearest-neighbour statement (:func:`nearest`, no filter, no vehicle) at
    ``ef_search``, for ``verify`` and the benches: live products' ids, nearest first.
    ``order``: the index's distance expression; ``table``: a scratch copy of the
    embeddings table may stand in (benchmarks). Run it in a transaction of its own: its
    ``ef_search`` is set for the transaction."""
    statement = nearest(source, order, sql.SQL("TRUE"), table=table)
    params = {"q": vector, "k": k, "exclude": -1, "vehicles": [], "w_vehicle": 0.0}
    conn.execute(LOCAL_EF_SEARCH, (str(ef_search),))
    rows = conn.execute(statement, params).fetchall()
    return [int(r[0]) for r in rows]


def exact_top_k(
    conn: psycopg.Connection[Any],
    vector: Any,
    k: int = 10,
    source: Source | None = None,
    table: sql.Composable = EMBEDDINGS,
) -> list[tuple[int, float]]:
    """The ``k`` nearest (product id, float32 cosine distance) by brute force, nearest
    first; only live products of ``source`` when given."""
    if source is None:
        query = sql.SQL(
            "SELECT e.product_id, e.embedding <=> %(q)s FROM {t} AS e ORDER BY 2 LIMIT %(k)s"
        ).format(t=table)
    else:
        query = sql.SQL(
            "SELECT e.product_id, e.embedding <=> %(q)s FROM {t} AS e "
            "JOIN {src} AS s ON s.{id} = e.product_id WHERE {eligible} ORDER BY 2 LIMIT %(k)s"
        ).format(t=table, **source.sql_parts())
    # session settings, reset right after: SET LOCAL inside a savepoint would outlive it
    # until the caller's transaction ends and turn every later index scan into a full scan
    conn.execute("SET enable_indexscan = off")
    conn.execute("SET enable_bitmapscan = off")
    try:
        return [(int(i), float(d)) for i, d in conn.execute(query, {"q": vector, "k": k})]
    finally:
        conn.execute("RESET enable_indexscan")
        conn.execute("RESET enable_bitmapscan")


def exact_distances(
    conn: psycopg.Connection[Any],
    vector: Any,
    ids: Iterable[int],
    table: sql.Composable = EMBEDDINGS,
) -> dict[int, float]:
    """Float32 cosine distance from ``vector`` to each stored product of ``ids``."""
    rows = conn.execute(
        sql.SQL("SELECT product_id, embedding <=> %s FROM {} WHERE product_id = ANY(%s)").format(
            table
        ),
        (vector, list(ids)),
    )
    return {int(i): float(d) for i, d in rows}
