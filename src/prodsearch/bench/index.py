"""``prodsearch bench index``: HNSW shapes (``vector`` / ``halfvec``) and build parameters.

On the embeddings already in the database: build each shape with each (m,
ef_construction) under the same name, record build time and size, then measure
recall@10 against exact search (tie-aware, per query set: WANDS and catalog-domain) and
SQL latency of the top-10 query, at several ``ef_search`` values. The configured index
is rebuilt at the end.
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
from prodsearch.embedding import index
from prodsearch.embedding.encoder import load_encoder
from prodsearch.embedding.store import EMBEDDINGS


def run(
    settings: Settings,
    shapes: Sequence[str] = ("vector", "halfvec"),
    params: Sequence[tuple[int, int]] | None = None,
    ef_values: Sequence[int] = (40, 100, 200),
    n_queries: int = 200,
    progress: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    """Build every (shape, m, ef_construction) in turn; ``params`` defaults to the
    configured pair. Recall is tie-aware on exact float32 distances: a returned product
    counts when it is no farther than the 10th exact neighbour."""
    params = list(params or [(settings.hnsw_m, settings.hnsw_ef_construction)])
    sample = recall_sample(n_queries)
    enc = load_encoder(settings.mode, settings.model, models_dir=settings.models_dir)
    vectors = [enc.encode([q])[0] for _kind, q in sample]
    out: dict[str, Any] = {"queries": len(sample), "shapes": []}
    with connect(database_url(settings)) as conn:
        register_vector(conn)
        conn.execute("SET max_parallel_workers_per_gather = 0")
        rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(EMBEDDINGS)).fetchone()
        out["rows"] = rows[0] if rows else 0
        exact_kth = []
        progress(f"exact search for {len(sample)} queries over {out['rows']:,} vectors")
        index.drop(conn)
        for vec in vectors:
            d = conn.execute(
                sql.SQL("SELECT embedding <=> %s FROM {} ORDER BY 1 LIMIT 10").format(EMBEDDINGS),
                (vec,),
            ).fetchall()
            exact_kth.append(d[-1][0])
        for shape in shapes:
            for m, efc in params:
                progress(f"building {shape} index, m={m}, ef_construction={efc}")
                build_s = index.build(conn, shape, m, efc)
                out["shapes"].append(
                    _measure(conn, shape, m, efc, build_s, sample, vectors, exact_kth,
                             ef_values, enc.dim, progress)
                )  # fmt: skip
        progress(f"restoring the configured {settings.index_type} index")
        index.build(conn, settings.index_type, settings.hnsw_m, settings.hnsw_ef_construction)
    return out


def _measure(
    conn: Any, shape: str, m: int, efc: int, build_s: float, sample: list[tuple[str, str]],
    vectors: list[Any], exact_kth: list[float], ef_values: Sequence[int], dim: int,
    progress: Callable[[str], None],
) -> dict[str, Any]:  # fmt: skip
    st = index.status(conn)
    query = sql.SQL(
        "SELECT e.embedding <=> %(q)s::vector({d}) FROM {emb} AS e ORDER BY {order} LIMIT 10"
    ).format(order=index.order_expression(shape, dim), emb=EMBEDDINGS, d=sql.Literal(dim))
    result: dict[str, Any] = {
        "shape": shape, "m": m, "ef_construction": efc, "build_s": round(build_s, 1),
        "size": st["size"], "size_bytes": st["size_bytes"], "by_ef": [],
    }  # fmt: skip
    for ef in ef_values:
        conn.execute(sql.SQL("SET hnsw.ef_search = {}").format(sql.Literal(ef)))
        lat: list[float] = []
        per: dict[str, list[float]] = {"wands": [], "catalog": []}
        for (kind, _q), vec, kth in zip(sample, vectors, exact_kth, strict=True):
            t0 = time.perf_counter()
            got = conn.execute(query, {"q": vec}).fetchall()
            lat.append((time.perf_counter() - t0) * 1000)
            per[kind].append(sum(g[0] <= kth + 1e-9 for g in got) / 10)
        every = per["wands"] + per["catalog"]
        row = {
            "ef_search": ef,
            "recall_at_10": round(statistics.fmean(every), 4),
            "recall_wands": round(statistics.fmean(per["wands"]), 4),
            "recall_catalog": round(statistics.fmean(per["catalog"]), 4),
            "p50_ms": round(statistics.median(lat), 2),
            "p95_ms": round(float(np.percentile(lat, 95)), 2),
        }
        result["by_ef"].append(row)
        progress(
            f"{shape} m={m} efc={efc} ef_search={ef}: recall {row['recall_at_10']} "
            f"(WANDS {row['recall_wands']}, catalog {row['recall_catalog']}), "
            f"p50 {row['p50_ms']} ms"
        )
    conn.execute("RESET hnsw.ef_search")
    return result
