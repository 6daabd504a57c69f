"""``prodsearch bench index``: plain ``vector`` HNSW vs a ``halfvec`` expression index.

On the embeddings already in the database: build each shape (same name, m,
ef_construction), record build time and size, then measure recall@10 against exact
search (tie-aware: a hit is no farther than the 10th exact neighbour) and SQL latency
of the top-10 query for a set of real queries, at several ``ef_search`` values. The
configured index shape is rebuilt at the end.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from pgvector.psycopg import register_vector
from psycopg import sql

from prodsearch.bench.queries import benchmark_queries
from prodsearch.config import Settings
from prodsearch.db import connect, database_url
from prodsearch.embedding import index
from prodsearch.embedding.encoder import load_encoder
from prodsearch.embedding.store import EMBEDDINGS


def run(
    settings: Settings,
    shapes: Sequence[str] = ("vector", "halfvec"),
    ef_values: Sequence[int] = (40, 100, 200),
    n_queries: int = 200,
    progress: Callable[[str], None] = lambda _m: None,
) -> dict[str, Any]:
    queries = benchmark_queries()[:: max(1, len(benchmark_queries()) // n_queries)][:n_queries]
    enc = load_encoder(settings.mode, settings.model, models_dir=settings.models_dir)
    vectors = [enc.encode([q])[0] for q in queries]
    out: dict[str, Any] = {"queries": len(queries), "shapes": []}
    with connect(database_url(settings)) as conn:
        register_vector(conn)
        rows = conn.execute(sql.SQL("SELECT count(*) FROM {}").format(EMBEDDINGS)).fetchone()
        out["rows"] = rows[0] if rows else 0
        exact_kth = []
        progress(f"exact search for {len(queries)} queries over {out['rows']:,} vectors")
        index.drop(conn)
        for vec in vectors:
            d = conn.execute(
                sql.SQL("SELECT embedding <=> %s FROM {} ORDER BY 1 LIMIT 10").format(EMBEDDINGS),
                (vec,),
            ).fetchall()
            exact_kth.append(d[-1][0])
        for shape in shapes:
            progress(f"building {shape} index")
            build_s = index.build(conn, shape, settings.hnsw_m, settings.hnsw_ef_construction)
            st = index.status(conn)
            order = index.order_expression(shape, enc.dim)
            query = sql.SQL("SELECT {order} AS d FROM {emb} AS e ORDER BY d LIMIT 10").format(
                order=order, emb=EMBEDDINGS
            )
            result = {
                "shape": shape,
                "build_s": round(build_s, 1),
                "size": st["size"],
                "size_bytes": st["size_bytes"],
                "by_ef": [],
            }
            for ef in ef_values:
                conn.execute(sql.SQL("SET hnsw.ef_search = {}").format(sql.Literal(ef)))
                lat, hits = [], 0
                for vec, kth in zip(vectors, exact_kth, strict=True):
                    t0 = time.perf_counter()
                    got = conn.execute(query, {"q": vec}).fetchall()
                    lat.append((time.perf_counter() - t0) * 1000)
                    hits += sum(g[0] <= kth + 2e-3 for g in got)
                row = {
                    "ef_search": ef,
                    "recall_at_10": round(hits / (10 * len(vectors)), 4),
                    "p50_ms": round(statistics.median(lat), 2),
                    "p95_ms": round(float(np.percentile(lat, 95)), 2),
                }
                result["by_ef"].append(row)
                progress(
                    f"{shape} ef_search={ef}: recall {row['recall_at_10']}, p50 {row['p50_ms']} ms"
                )
            conn.execute("RESET hnsw.ef_search")
            out["shapes"].append(result)
        progress(f"restoring the configured {settings.index_type} index")
        index.build(conn, settings.index_type, settings.hnsw_m, settings.hnsw_ef_construction)
    return out
