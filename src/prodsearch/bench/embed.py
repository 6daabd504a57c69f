"""``prodsearch bench embed``: end-to-end products/s, ours vs the original platform's method.

Everything runs on one generated catalog in a dedicated database
(``prodsearch_bench_embed``, recreated each run) of the configured server:

- **baseline** — the original pipeline: sentence-transformers fp32, batches of 32 in
  catalog order, one ``executemany`` upsert and commit per batch, HNSW index built at the
  end (plain ``vector``, m=16, ef_construction=64);
- **ours, per mode** — ``prodsearch embed`` into an empty table (index built at the end),
  then 1 % of products changed and the incremental rerun timed.

End to end = source rows → vectors in PostgreSQL → index ready, model load included
(ONNX exports are cached beforehand, as after a first run).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from pgvector.psycopg import register_vector
from psycopg.conninfo import make_conninfo
from pydantic import SecretStr

from prodsearch.bench import sql as bench_sql
from prodsearch.bench.baseline import sentence_transformer
from prodsearch.catalog import generate
from prodsearch.catalog import sql as catalog_sql
from prodsearch.catalog.source import Source, load_source
from prodsearch.catalog.text import content_hash, prepare_text
from prodsearch.config import Settings, encoder_mode
from prodsearch.db import connect, database_url, hnsw, migrate
from prodsearch.embedding import store
from prodsearch.embedding.encoder import cpu_threads, encoder_for
from prodsearch.embedding.sync import SyncOptions, sync

BENCH_DB = "prodsearch_bench_embed"


@dataclass
class EmbedMethod:
    """One method end to end; the incremental fields only for ours."""

    method: str  # "baseline" or an encoder mode
    seconds: float
    products_per_s: float
    ratio: float | None  # baseline seconds / these seconds
    embedded_texts: int | None = None
    deduplicated: int | None = None
    write_share: float | None = None
    index_s: float | None = None
    encode_s: float | None = None
    incremental_changed: int | None = None
    incremental_written: int | None = None
    incremental_s: float | None = None
    incremental_speedup: float | None = None
    engine: str = "local"  # local threads, or a Ray Data actor pool
    workers: int | None = None  # ray: actors
    rows_per_worker_s: float | None = None  # ray: rows an actor embeds + writes per busy second
    write_rows_per_s: float | None = None  # local: rows the writer stage upserts per busy second
    fixed_s: float | None = None  # what does not shrink with workers: load, plan, index, start-up


@dataclass
class EmbedBench:
    products: int
    eligible: int
    methods: list[EmbedMethod] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _bench_url(settings: Settings) -> str:
    base = database_url(settings)
    with connect(base, autocommit=True) as conn:
        bench_sql.recreate_database(conn, BENCH_DB)
    return make_conninfo(base, dbname=BENCH_DB)


def _reset(url: str) -> None:
    """An empty table, no index and no query map: every measured run is a first run."""
    with connect(url) as conn:
        hnsw.drop(conn)
        bench_sql.empty_vectors(conn)


def _demo_settings(settings: Settings, url: str) -> Settings:
    """The settings of the scratch database: the generated demo catalog in its own table,
    whatever the configured source is."""
    demo_source = {
        name: Settings.model_fields[name].default
        for name in (
            "source_table",
            "source_id_column",
            "source_deleted",
            "text_fields",
            "search_fields",
            "code_columns",
            "filter_columns",
        )
    }
    return settings.model_copy(update={"database_url": SecretStr(url), **demo_source})


def baseline(url: str, source: Source, batch: int = 32) -> float:
    """The original platform's method; returns seconds end to end."""
    started = time.perf_counter()
    model = sentence_transformer()
    name = "sentence-transformers/all-MiniLM-L6-v2"
    cols = source.text_columns
    with connect(url) as conn:
        register_vector(conn)
        last = 0
        while rows := catalog_sql.text_page(conn, source, last):
            last = rows[-1][0]
            for i in range(0, len(rows), batch):
                part = rows[i : i + batch]
                texts = [prepare_text(dict(zip(cols, r[1:], strict=True)), cols) for r in part]
                vectors = model.encode(texts, batch_size=batch, normalize_embeddings=True)
                with conn.cursor() as cur:
                    cur.executemany(
                        bench_sql.ORIGINAL_UPSERT,
                        [
                            (r[0], vec, content_hash(t, name, "exact"), name)
                            for r, vec, t in zip(part, vectors, texts, strict=True)
                        ],
                    )
                conn.commit()
        hnsw.build(conn, "vector")
        conn.commit()
    return time.perf_counter() - started


def _change_one_percent(url: str, source: Source, seed: int) -> int:
    """Append to the description (the last text field) of 1 % of the live products."""
    with connect(url) as conn:
        changed = catalog_sql.append_to_text(
            conn, source, source.text_columns[-1], f" Updated {seed}", 100, seed
        )
        conn.commit()
        return changed


def run(
    settings: Settings,
    products: int = 20_000,
    modes: Sequence[str] = ("exact", "bf16", "int8"),
    with_baseline: bool = True,
    progress: Callable[[str], None] = lambda _m: None,
    engines: Sequence[str] = ("local",),
    workers: int | None = None,
) -> EmbedBench:
    url = _bench_url(settings)
    bench_settings = _demo_settings(settings, url)
    with connect(url) as conn:
        migrate(conn)
        generate.load(conn, products, seed=7)
        source = load_source(conn, bench_settings)
        eligible = store.count_eligible(conn, source)
    for mode in modes:  # exports cached before timing, as after a first run
        encoder_for(settings, encoder_mode(mode))
    out = EmbedBench(products, eligible)
    base_s = None
    if with_baseline:
        progress(f"baseline: sentence-transformers fp32, batch 32, executemany ({eligible:,} rows)")
        base_s = baseline(url, source)
        out.methods.append(
            EmbedMethod("baseline", round(base_s, 1), round(eligible / base_s, 1), 1.0)
        )
        progress(f"baseline: {base_s:.1f} s")
    for n, mode in enumerate(modes):
        for engine in engines:
            _reset(url)
            ray = engine == "ray"
            opts = SyncOptions(
                mode=encoder_mode(mode), engine="ray" if ray else "local", workers=workers
            )
            out.methods.append(
                _measure_mode(bench_settings, url, source, opts, n + 1, eligible, base_s, progress)
            )
    with connect(database_url(settings), autocommit=True) as conn:
        bench_sql.drop_database(conn, BENCH_DB)
    return out


def _measure_mode(
    settings: Settings,
    url: str,
    source: Source,
    opts: SyncOptions,
    seed: int,
    eligible: int,
    base_s: float | None,
    progress: Callable[[str], None],
) -> EmbedMethod:
    """A full run into an empty table, then an incremental run after 1 % changed."""
    mode = opts.mode
    progress(f"{mode} ({opts.engine}): full run")
    full = sync(settings, opts)
    full_s = full.timings.total_s or 0.0
    changed = _change_one_percent(url, source, seed)
    progress(f"{mode}: {full_s:.1f} s; incremental run after changing {changed} products")
    inc = sync(settings, opts)
    inc_s = inc.timings.total_s or 0.0
    progress(f"{mode}: incremental {inc_s:.2f} s ({full_s / inc_s:.0f}x faster)")
    t = full.timings
    ray = opts.engine == "ray"
    return EmbedMethod(
        engine=opts.engine,
        workers=(opts.workers or cpu_threads()) if ray else None,
        rows_per_worker_s=round(full.written / t.encode_s, 1) if ray and t.encode_s else None,
        write_rows_per_s=round(full.written / t.write_s, 1) if t.write_s else None,
        fixed_s=round(full_s - (t.pipeline_s or 0.0), 1),
        method=mode,
        seconds=round(full_s, 1),
        products_per_s=round(eligible / full_s, 1),
        ratio=round(base_s / full_s, 2) if base_s else None,
        embedded_texts=full.embedded,
        deduplicated=full.deduplicated,
        write_share=round((t.write_s or 0.0) / full_s, 3),
        index_s=t.index_s,
        encode_s=t.encode_s,
        incremental_changed=changed,
        incremental_written=inc.written,
        incremental_s=round(inc_s, 2),
        incremental_speedup=round(full_s / inc_s, 1),
    )


__all__ = ["run"]
