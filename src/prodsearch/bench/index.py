"""``prodsearch bench index``: HNSW shapes (``vector`` / ``halfvec``) and build parameters.

On the embeddings already in the database: build each shape with each (m,
ef_construction) under the same name, record build time and size, then measure
recall@10 against exact search (per query set: WANDS and catalog-domain) and SQL latency
of the top-10 query, at several ``ef_search`` values. The configured index is rebuilt at
the end; ``existing=True`` measures the index as it is instead, without rebuilding.

Two recall figures, both on exact float32 distances of the returned products:

* **strict** (tie-aware): a result counts when it is no farther than the 10th exact
  neighbour (equal vectors tie, so duplicate texts are not punished);
* **ε-recall** (ann-benchmarks' definition, ε = 0.01): no farther than 1.01 × the 10th
  exact neighbour's distance — on a template-dense catalog many products sit within a
  hair of the 10th neighbour, and this is the figure that tracks what shoppers see.

Query vectors go through the stored Polish→English query map, as the API's do.
``unique=True`` also indexes one vector per distinct text (a scratch copy of the table)
and measures it the same way, to see whether the 4 % duplicate vectors cost recall.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pgvector.psycopg import register_vector
from psycopg import sql

from prodsearch.bench.queries import recall_sample
from prodsearch.config import Settings
from prodsearch.db import connect, database_url
from prodsearch.embedding import index, querymap
from prodsearch.embedding.encoder import load_encoder
from prodsearch.embedding.store import EMBEDDINGS

EPSILON = 0.01
UNIQUE = sql.Identifier("analytics_features", "bench_unique_vectors")


def run(
    settings: Settings,
    shapes: Sequence[str] = ("vector", "halfvec"),
    params: Sequence[tuple[int, int]] | None = None,
    ef_values: Sequence[int] = (40, 100, 200),
    n_queries: int = 200,
    progress: Callable[[str], None] = lambda _m: None,
    existing: bool = False,
    unique: bool = False,
) -> dict[str, Any]:
    """Build every (shape, m, ef_construction) in turn (``params`` defaults to the
    configured pair), or measure the existing index; see the module docstring."""
    params = list(params or [(settings.hnsw_m, settings.hnsw_ef_construction)])
    sample = recall_sample(n_queries)
    # queries as the API embeds them: the query encoder, the documents' query map
    enc = load_encoder(settings.query_mode, settings.model, models_dir=settings.models_dir)
    vectors = [enc.encode([q])[0] for _kind, q in sample]
    out: dict[str, Any] = {"queries": len(sample), "shapes": []}
    with connect(database_url(settings)) as conn:
        qmap = querymap.load(conn, enc.model_name, settings.mode)
        if qmap is not None:
            vectors = list(qmap.apply(np.asarray(vectors)))
        out["query_map"] = qmap is not None
        register_vector(conn)
        conn.execute("SET max_parallel_workers_per_gather = 0")
        rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(EMBEDDINGS)).fetchone()
        out["rows"] = rows[0] if rows else 0
        progress(f"exact search for {len(sample)} queries over {out['rows']:,} vectors")
        current = index.status(conn)
        if not existing:
            index.drop(conn)
        exact_kth = _exact_kth(conn, EMBEDDINGS, vectors)

        def measure(shape: str, m: int, efc: int, build_s: float) -> dict[str, Any]:
            return _measure(
                conn,
                shape,
                m,
                efc,
                build_s,
                sample,
                vectors,
                exact_kth,
                ef_values,
                enc.dim,
                progress,
            )

        if existing:
            if not current["exists"]:
                raise ValueError("no index to measure: run `prodsearch index build` first")
            out["shapes"].append(
                measure(current["type"], current["m"], current["ef_construction"], 0.0)
            )
        for shape in () if existing else shapes:
            for m, efc in params:
                progress(f"building {shape} index, m={m}, ef_construction={efc}")
                build_s = index.build(conn, shape, m, efc)
                out["shapes"].append(measure(shape, m, efc, build_s))
        if unique:
            out["unique"] = _measure_unique(
                conn, settings, sample, vectors, exact_kth, ef_values, enc.dim, progress
            )
        if not existing:
            progress(f"restoring the configured {settings.index_type} index")
            index.build(conn, settings.index_type, settings.hnsw_m, settings.hnsw_ef_construction)
    return out


def _exact_kth(conn: Any, table: sql.Composable, vectors: list[Any]) -> list[float]:
    """The 10th exact (float32) neighbour's distance per query, by a full scan."""
    conn.execute("SET enable_indexscan = off")
    out = []
    for vec in vectors:
        d = conn.execute(
            sql.SQL("SELECT embedding <=> %s FROM {} ORDER BY 1 LIMIT 10").format(table), (vec,)
        ).fetchall()
        out.append(d[-1][0])
    conn.execute("RESET enable_indexscan")
    return out


def _measure_unique(
    conn: Any,
    settings: Settings,
    sample: list[tuple[str, str]],
    vectors: list[Any],
    exact_kth: list[float],
    ef_values: Sequence[int],
    dim: int,
    progress: Callable[[str], None],
) -> dict[str, Any]:
    """The configured index shape over one vector per distinct text, in a scratch table
    (dropped afterwards), measured against the exact neighbours *of that table* (serving
    it would expand each hit to the products sharing its text)."""
    progress("copying one vector per distinct text into a scratch table")
    conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(UNIQUE))
    conn.execute(
        sql.SQL(
            "CREATE TABLE {} AS SELECT DISTINCT ON (content_hash) product_id, embedding FROM {} "
            "ORDER BY content_hash, product_id"
        ).format(UNIQUE, EMBEDDINGS)
    )
    conn.commit()
    try:
        rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(UNIQUE)).fetchone()
        progress(f"building the {settings.index_type} index over {rows[0]:,} unique vectors")
        build_s = index.build(
            conn,
            settings.index_type,
            settings.hnsw_m,
            settings.hnsw_ef_construction,
            table=UNIQUE,
            name="bench_unique_hnsw",
        )
        exact_kth = _exact_kth(conn, UNIQUE, vectors)
        result = _measure(
            conn,
            settings.index_type,
            settings.hnsw_m,
            settings.hnsw_ef_construction,
            build_s,
            sample,
            vectors,
            exact_kth,
            ef_values,
            dim,
            progress,
            table=UNIQUE,
        )
        result["rows"] = rows[0]
        return result
    finally:
        conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(UNIQUE))
        conn.commit()


def _measure(
    conn: Any,
    shape: str,
    m: int,
    efc: int,
    build_s: float,
    sample: list[tuple[str, str]],
    vectors: list[Any],
    exact_kth: list[float],
    ef_values: Sequence[int],
    dim: int,
    progress: Callable[[str], None],
    table: sql.Composable = EMBEDDINGS,
) -> dict[str, Any]:
    st = index.status(conn) if table is EMBEDDINGS else {"size": None, "size_bytes": None}
    query = sql.SQL(
        "SELECT e.embedding <=> %(q)s::vector({d}) FROM {emb} AS e ORDER BY {order} LIMIT 10"
    ).format(order=index.order_expression(shape, dim), emb=table, d=sql.Literal(dim))
    result: dict[str, Any] = {
        "shape": shape,
        "m": m,
        "ef_construction": efc,
        "build_s": round(build_s, 1),
        "size": st["size"],
        "size_bytes": st["size_bytes"],
        "by_ef": [],
    }
    for ef in ef_values:
        conn.execute(sql.SQL("SET hnsw.ef_search = {}").format(sql.Literal(ef)))
        lat: list[float] = []
        per: dict[str, list[float]] = {"wands": [], "catalog": []}
        eps: list[float] = []
        for (kind, _q), vec, kth in zip(sample, vectors, exact_kth, strict=True):
            t0 = time.perf_counter()
            got = conn.execute(query, {"q": vec}).fetchall()
            lat.append((time.perf_counter() - t0) * 1000)
            per[kind].append(sum(g[0] <= kth + 1e-9 for g in got) / 10)
            eps.append(sum(g[0] <= (1 + EPSILON) * kth + 1e-9 for g in got) / 10)
        every = per["wands"] + per["catalog"]
        row = {
            "ef_search": ef,
            "recall_at_10": round(statistics.fmean(every), 4),
            "eps_recall_at_10": round(statistics.fmean(eps), 4),
            "recall_wands": round(statistics.fmean(per["wands"]), 4),
            "recall_catalog": round(statistics.fmean(per["catalog"]), 4),
            "p50_ms": round(statistics.median(lat), 2),
            "p95_ms": round(float(np.percentile(lat, 95)), 2),
        }
        result["by_ef"].append(row)
        progress(
            f"{shape} m={m} efc={efc} ef_search={ef}: recall {row['recall_at_10']} "
            f"(WANDS {row['recall_wands']}, catalog {row['recall_catalog']}), "
            f"eps-recall {row['eps_recall_at_10']}, "
            f"p50 {row['p50_ms']} ms"
        )
    conn.execute("RESET hnsw.ef_search")
    return result


def plot(result: dict[str, Any], path: str) -> None:
    """Recall (strict and ε) and p50 latency against ef_search, one line per index."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_r, ax_l) = plt.subplots(1, 2, figsize=(11, 4.2))
    entries = [(f"{s['shape']} m={s['m']}/{s['ef_construction']}", s) for s in result["shapes"]]
    if "unique" in result:
        entries.append(("unique texts only", result["unique"]))
    for label, entry in entries:
        efs = [r["ef_search"] for r in entry["by_ef"]]
        ax_r.plot(efs, [r["recall_at_10"] for r in entry["by_ef"]], "o-", label=f"{label}: strict")
        ax_r.plot(
            efs, [r["eps_recall_at_10"] for r in entry["by_ef"]], "s--", label=f"{label}: ε=0.01"
        )
        ax_l.plot(efs, [r["p50_ms"] for r in entry["by_ef"]], "o-", label=f"{label} p50")
        ax_l.plot(efs, [r["p95_ms"] for r in entry["by_ef"]], "s--", label=f"{label} p95")
    title = f"recall@10, {result['rows']:,} vectors, {result['queries']} queries"
    ax_r.set(xlabel="hnsw.ef_search", ylabel="recall@10", ylim=(0.5, 1.005), title=title)
    ax_l.set(xlabel="hnsw.ef_search", ylabel="SQL latency, ms", title="top-10 query latency")
    for ax in (ax_r, ax_l):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
