"""Experiment (issue #11, session 5), not part of the package: HNSW over a PCA projection
(halfvec(D)) of the stored vectors, the top candidates re-ranked by the full vectors, against
exact search; the same 200 queries, embedded the same way, as `prodsearch bench index`.

Run from the repository root against a populated database (PRODSEARCH_HOME or
DATABASE_URL), first with `build` (projects, copies into a scratch table, builds the index),
then without it to measure again:

    .venv/bin/python docs/experiments/pca_rerank.py 192 build

Drop the scratch table afterwards: DROP TABLE analytics_features.pca_scratch
"""

from __future__ import annotations

import statistics
import sys
import time
from typing import Any

import numpy as np
from pgvector.psycopg import register_vector

from prodsearch.bench.load import percentile
from prodsearch.bench.workload import recall_sample
from prodsearch.config import get_settings
from prodsearch.db import connect, database_url
from prodsearch.search import recall
from prodsearch.search.setup import build_searcher

SCRATCH = "analytics_features.pca_scratch"
GRID = ((100, 50), (100, 100), (150, 100), (200, 100), (200, 200), (300, 100))  # ef, candidates


def literal(values: Any, fmt: str) -> str:
    return "[" + ",".join(format(float(v), fmt) for v in values) + "]"


def build(conn: Any, dim: int) -> None:
    started = time.perf_counter()
    rows = conn.execute(
        "SELECT product_id, embedding FROM analytics_features.product_embeddings"
    ).fetchall()
    ids = [r[0] for r in rows]
    x = np.vstack([np.asarray(r[1].to_numpy(), dtype=np.float32) for r in rows])
    mean = x.mean(0)
    _u, s, vt = np.linalg.svd(x[::4] - mean, full_matrices=False)
    proj = vt[:dim].T.astype(np.float32)
    np.save(f"pca{dim}.npy", np.vstack([mean[None, :], proj.T]))
    y = (x - mean) @ proj
    y /= np.linalg.norm(y, axis=1, keepdims=True)
    kept = (s[:dim] ** 2).sum() / (s**2).sum()
    print(f"PCA {dim}: variance kept {kept:.3f}; {time.perf_counter() - started:.1f} s")
    conn.execute(f"DROP TABLE IF EXISTS {SCRATCH}")
    conn.execute(
        f"CREATE TABLE {SCRATCH} (product_id bigint PRIMARY KEY, p halfvec({dim}), "
        "embedding vector(384))"
    )
    with (
        conn.cursor() as cur,
        cur.copy(f"COPY {SCRATCH} (product_id, p, embedding) FROM STDIN") as cp,
    ):
        for pid, yy, xx in zip(ids, y, x, strict=True):
            cp.write_row((pid, literal(yy, ".5f"), literal(xx, ".7g")))
    conn.commit()
    started = time.perf_counter()
    conn.execute("SET maintenance_work_mem = '1GB'")
    conn.execute("SET max_parallel_maintenance_workers = 2")
    conn.execute(
        f"CREATE INDEX pca_scratch_hnsw ON {SCRATCH} USING hnsw (p halfvec_cosine_ops) "
        "WITH (m = 16, ef_construction = 512)"
    )
    conn.commit()
    size = conn.execute(
        "SELECT pg_size_pretty(pg_relation_size('analytics_features.pca_scratch_hnsw'))"
    ).fetchone()[0]
    print(f"index build {time.perf_counter() - started:.1f} s, {size}")


def measure(conn: Any, dim: int, vectors: list[Any]) -> None:
    saved = np.load(f"pca{dim}.npy")
    mean, proj = saved[0], saved[1:].T
    conn.execute("SET max_parallel_workers_per_gather = 0")
    kth = [recall.exact_top_k(conn, v, 10)[-1][1] for v in vectors]
    query = (
        f"SELECT embedding <=> %(q)s FROM (SELECT embedding FROM {SCRATCH} "
        "ORDER BY p <=> %(p)s::halfvec LIMIT %(cand)s) AS c ORDER BY 1 LIMIT 10"
    )
    for ef, cand in GRID:
        conn.execute(f"SET hnsw.ef_search = {ef}")
        lat, eps, strict = [], [], []
        for vec, k in zip(vectors, kth, strict=True):
            y = (np.asarray(vec) - mean) @ proj
            params = {"q": vec, "p": literal(y / np.linalg.norm(y), ".5f"), "cand": cand}
            started = time.perf_counter()
            found = [r[0] for r in conn.execute(query, params)]
            lat.append((time.perf_counter() - started) * 1000)
            eps.append(recall.tie_aware_recall(found, k, epsilon=recall.EPSILON))
            strict.append(recall.tie_aware_recall(found, k))
        print(
            f"D={dim} ef={ef} candidates={cand}: ε-recall {np.mean(eps):.4f}, strict "
            f"{np.mean(strict):.4f}, p50 {statistics.median(lat):.2f} ms, "
            f"p95 {percentile(lat, 95):.2f} ms"
        )


def main() -> None:
    dim = int(sys.argv[1])
    settings = get_settings()
    with connect(database_url(settings)) as conn:
        register_vector(conn)
        searcher = build_searcher(conn, settings)  # query vectors as the API makes them
        vectors = [searcher.vectors.vector(q) for _kind, q in recall_sample(200)]
        if sys.argv[2:] == ["build"]:
            build(conn, dim)
        measure(conn, dim, vectors)


if __name__ == "__main__":
    main()
