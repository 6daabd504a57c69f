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
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from pgvector.psycopg import register_vector
from psycopg import sql

from prodsearch.bench import sql as bench_sql
from prodsearch.bench.load import percentile
from prodsearch.bench.workload import recall_sample
from prodsearch.catalog.source import Source
from prodsearch.config import Settings
from prodsearch.db import connect, database_url, hnsw
from prodsearch.db.names import BENCH_LIVE_VECTORS, BENCH_UNIQUE_VECTORS, EMBEDDINGS
from prodsearch.embedding import store
from prodsearch.embedding.sync import build_index
from prodsearch.errors import ProdsearchError
from prodsearch.search import queries, recall
from prodsearch.search.setup import build_searcher


@dataclass(frozen=True)
class EfRow:
    """One ``hnsw.ef_search`` value: recall@10 (strict and ε) and SQL latency."""

    ef_search: int
    recall_at_10: float
    eps_recall_at_10: float
    recall_wands: float
    recall_catalog: float
    p50_ms: float
    p95_ms: float


@dataclass
class IndexShape:
    """One index (shape, m, ef_construction), measured at each ``ef_search``."""

    shape: str
    m: int
    ef_construction: int
    build_s: float
    size: str | None
    size_bytes: int | None
    by_ef: list[EfRow] = field(default_factory=list)
    rows: int | None = None  # vectors indexed, when not the embeddings table's
    insert_ms: float | None = None  # one live row written into the built index, median
    live_share: float | None = None  # this share of the rows inserted after the build …
    insert_ef_construction: int | None = None  # … with this ef_construction


@dataclass
class IndexBench:
    queries: int
    rows: int = 0
    query_map: bool = False
    shapes: list[IndexShape] = field(default_factory=list)
    unique: IndexShape | None = None
    live: list[IndexShape] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class _Probe:
    """The queries an index is measured with, and the exact answers to them."""

    sample: list[tuple[str, str]]  # (kind, query text)
    vectors: list[Any]
    exact_kth: list[float]  # the exact 10th neighbour's distance per query
    ef_values: Sequence[int]
    dim: int
    source: Source
    progress: Callable[[str], None]


def run(
    settings: Settings,
    shapes: Sequence[str] = ("vector", "halfvec"),
    params: Sequence[tuple[int, int]] | None = None,
    ef_values: Sequence[int] = (40, 100, 200),
    n_queries: int = 200,
    progress: Callable[[str], None] = lambda _m: None,
    existing: bool = False,
    unique: bool = False,
    live_share: float = 0.0,
    insert_efs: Sequence[int] = (),
) -> IndexBench:
    """Build every (shape, m, ef_construction) in turn (``params`` defaults to the
    configured pair), or measure the existing index; see the module docstring."""
    sample = recall_sample(n_queries)
    out = IndexBench(queries=len(sample))
    with connect(database_url(settings)) as conn:
        configured = hnsw.ef_construction_for(conn, settings.hnsw_ef_construction)
        params = list(params or [(settings.hnsw_m, configured)])
        searcher = build_searcher(conn, settings)
        source = searcher.source
        vectors = [searcher.vectors.vector(q) for _kind, q in sample]
        dim, out.query_map = searcher.encoder.dim, searcher.query_map is not None
        register_vector(conn)
        bench_sql.no_parallel_workers(conn)
        out.rows = store.count_embeddings(conn)
        progress(f"exact search for {len(sample)} queries over {out.rows:,} vectors")
        current = hnsw.status(conn)
        if not existing:
            hnsw.drop(conn)
            conn.commit()
        exact_kth = _exact_kth(conn, source, EMBEDDINGS, vectors)
        probe = _Probe(sample, vectors, exact_kth, ef_values, dim, source, progress)
        if existing:
            if not current.exists or current.type is None:
                raise ProdsearchError("no index to measure: run `prodsearch index build` first")
            m, efc = current.m or 0, current.ef_construction or 0
            out.shapes.append(_measure(conn, probe, current.type, m, efc, 0.0))
        inserts = [] if existing else _moved(bench_sql.sample_vectors(conn, INSERT_SAMPLE))
        for shape in () if existing else shapes:
            for m, efc in params:
                progress(f"building {shape} index, m={m}, ef_construction={efc}")
                build_s = hnsw.build(
                    conn, shape, m, efc, insert_ef_construction=settings.hnsw_insert_ef_construction
                )
                conn.commit()
                measured = _measure(conn, probe, shape, m, efc, build_s)
                measured.insert_ms = _insert_ms(conn, inserts)
                progress(f"{shape} m={m} efc={efc}: a live insert {measured.insert_ms} ms")
                out.shapes.append(measured)
        if unique:
            out.unique = _measure_unique(conn, settings, probe)
        for insert_ef in insert_efs if live_share > 0 else ():
            out.live.append(_measure_live(conn, settings, probe, live_share, insert_ef))
        if not existing:
            progress(f"restoring the configured {settings.index_type} index")
            build_index(conn, settings)
    return out


INSERT_SAMPLE = 300  # rows written one by one into each built index


def _moved(rows: list[tuple[int, Any]]) -> list[tuple[int, Any]]:
    """Each stored vector nudged (σ 0.02 per dimension, renormalised): a write that the
    index must insert (an unchanged value would be a HOT update and skip the index).
    The vectors arrive as pgvector ``Vector`` objects (``register_vector``)."""
    rng = np.random.default_rng(0)
    out = []
    for pid, vec in rows:
        v = vec.to_numpy().astype(np.float32)
        v = v + rng.normal(0, 0.02, v.shape).astype(np.float32)
        out.append((pid, v / np.linalg.norm(v)))
    return out


def _insert_ms(conn: Any, rows: list[tuple[int, Any]]) -> float | None:
    """Median milliseconds to write one row with a live index (as the watch worker does),
    one statement each, all rolled back."""
    if not rows:
        return None
    lat = []
    try:
        for pid, vec in rows:
            t0 = time.perf_counter()
            bench_sql.rewrite_vector(conn, pid, vec)
            lat.append((time.perf_counter() - t0) * 1000)
    finally:
        conn.rollback()
    return round(statistics.median(lat), 2)


def _exact_kth(conn: Any, source: Source, table: sql.Composable, vectors: list[Any]) -> list[float]:
    """The 10th exact (float32) live neighbour's distance per query, by a full scan."""
    return [recall.exact_top_k(conn, vec, 10, source, table=table)[-1][1] for vec in vectors]


def _measure_unique(conn: Any, settings: Settings, probe: _Probe) -> IndexShape:
    """The configured index shape over one vector per distinct text, in a scratch table
    (dropped afterwards), measured against the exact neighbours *of that table* (serving
    it would expand each hit to the products sharing its text)."""
    progress = probe.progress
    progress("copying one vector per distinct text into a scratch table")
    try:
        rows = bench_sql.copy_unique_vectors(conn)
        conn.commit()
        progress(f"building the {settings.index_type} index over {rows:,} unique vectors")
        efc = hnsw.ef_construction_for(
            conn, settings.hnsw_ef_construction, table=BENCH_UNIQUE_VECTORS
        )
        build_s = hnsw.build(
            conn,
            settings.index_type,
            settings.hnsw_m,
            efc,
            table=BENCH_UNIQUE_VECTORS,
            name="bench_unique_hnsw",
        )
        conn.commit()
        exact_kth = _exact_kth(conn, probe.source, BENCH_UNIQUE_VECTORS, probe.vectors)
        result = _measure(
            conn,
            replace(probe, exact_kth=exact_kth),
            settings.index_type,
            settings.hnsw_m,
            efc,
            build_s,
            table=BENCH_UNIQUE_VECTORS,
        )
        result.rows = rows
        return result
    finally:
        bench_sql.drop_unique_vectors(conn)
        conn.commit()


def _measure_live(
    conn: Any, settings: Settings, probe: _Probe, share: float, insert_ef: int
) -> IndexShape:
    """The configured index built over all rows but a fixed ``share``, which is then
    inserted with ``insert_ef`` as ef_construction (as the watch worker's writes are),
    in a scratch copy: its recall against the same exact answers (the copy holds every
    vector once more) and the mean cost of one insert."""
    progress = probe.progress
    try:
        built_rows = bench_sql.copy_vectors_but(conn, share)
        conn.commit()
        efc = hnsw.ef_construction_for(conn, settings.hnsw_ef_construction)
        progress(f"building over {built_rows:,} vectors (ef_construction {efc})")
        build_s = hnsw.build(
            conn,
            settings.index_type,
            settings.hnsw_m,
            efc,
            table=BENCH_LIVE_VECTORS,
            name="bench_live_hnsw",
        )
        hnsw.set_insert_ef_construction(conn, insert_ef, name="bench_live_hnsw")
        conn.commit()
        t0 = time.perf_counter()
        inserted = bench_sql.insert_held(conn, share)
        conn.commit()
        insert_s = time.perf_counter() - t0
        progress(
            f"{inserted:,} vectors inserted with ef_construction {insert_ef}: "
            f"{insert_s / max(1, inserted) * 1000:.2f} ms each"
        )
        result = _measure(
            conn,
            probe,
            settings.index_type,
            settings.hnsw_m,
            efc,
            build_s,
            table=BENCH_LIVE_VECTORS,
        )
        result.rows = built_rows + inserted
        result.live_share, result.insert_ef_construction = share, insert_ef
        result.insert_ms = round(insert_s / max(1, inserted) * 1000, 2)
        return result
    finally:
        bench_sql.drop_live_vectors(conn)
        conn.commit()


def _measure(
    conn: Any,
    probe: _Probe,
    shape: str,
    m: int,
    efc: int,
    build_s: float,
    table: sql.Composable = EMBEDDINGS,
) -> IndexShape:
    """Recall and latency of the API's nearest-neighbour statement at each ef_search."""
    st = hnsw.status(conn) if table is EMBEDDINGS else None
    order = hnsw.order_expression(shape, probe.dim)
    result = IndexShape(
        shape, m, efc, round(build_s, 1), st.size if st else None, st.size_bytes if st else None
    )
    for ef in probe.ef_values:
        lat: list[float] = []
        tally = recall.RecallTally()
        for (kind, _q), vec, kth in zip(probe.sample, probe.vectors, probe.exact_kth, strict=True):
            t0 = time.perf_counter()
            with conn.transaction():
                ids = queries.approximate_neighbours(
                    conn, probe.source, vec, order, ef, table=table
                )
            lat.append((time.perf_counter() - t0) * 1000)
            found = recall.exact_distances(conn, vec, ids, table=table)
            tally.add(kind, [found[i] for i in ids], kth)
        row = EfRow(
            ef_search=ef,
            recall_at_10=tally.mean(),
            eps_recall_at_10=tally.eps_mean(),
            recall_wands=tally.mean("wands"),
            recall_catalog=tally.mean("catalog"),
            p50_ms=round(statistics.median(lat), 2),
            p95_ms=percentile(lat, 95),
        )
        result.by_ef.append(row)
        probe.progress(
            f"{shape} m={m} efc={efc} ef_search={ef}: recall {row.recall_at_10} "
            f"(WANDS {row.recall_wands}, catalog {row.recall_catalog}), "
            f"eps-recall {row.eps_recall_at_10}, p50 {row.p50_ms} ms"
        )
    return result


def plot(result: IndexBench, path: str) -> None:
    """Recall (strict and ε) and p50 latency against ef_search, one line per index."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_r, ax_l) = plt.subplots(1, 2, figsize=(11, 4.2))
    entries = [(f"{s.shape} m={s.m}/{s.ef_construction}", s) for s in result.shapes]
    if result.unique is not None:
        entries.append(("unique texts only", result.unique))
    for label, entry in entries:
        efs = [r.ef_search for r in entry.by_ef]
        ax_r.plot(efs, [r.recall_at_10 for r in entry.by_ef], "o-", label=f"{label}: strict")
        ax_r.plot(efs, [r.eps_recall_at_10 for r in entry.by_ef], "s--", label=f"{label}: ε=0.01")
        ax_l.plot(efs, [r.p50_ms for r in entry.by_ef], "o-", label=f"{label} p50")
        ax_l.plot(efs, [r.p95_ms for r in entry.by_ef], "s--", label=f"{label} p95")
    title = f"recall@10, {result.rows:,} vectors, {result.queries} queries"
    ax_r.set(xlabel="hnsw.ef_search", ylabel="recall@10", ylim=(0.5, 1.005), title=title)
    ax_l.set(xlabel="hnsw.ef_search", ylabel="SQL latency, ms", title="top-10 query latency")
    for ax in (ax_r, ax_l):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
