"""The sync pipeline: make ``product_embeddings`` match the catalog, fast and resumably.

1. **Plan** — one SQL pass picks eligible rows whose raw text (``source_hash``), model or
   mode differ from what is stored; their text is prepared and hashed
   (``content_hash``). Rows whose prepared text is unchanged only get their raw hash
   refreshed. Identical texts are grouped: each is embedded once per run.
2. **Delete** embeddings of products that are soft-deleted or gone.
3. **Embed** — unique texts sorted by length flow through three stages on bounded
   queues: tokenise (thread) → encode (main thread; inference releases the GIL) →
   write (thread, own connection: binary COPY into a temp table, one
   ``INSERT … ON CONFLICT DO UPDATE``, commit). Each committed chunk is durable: a killed
   run loses at most the chunks in flight, and a rerun picks up exactly what is missing
   or stale, because the hashes stored beside the vectors say what is done.
4. **Index** — a bulk load (an empty table, ``--full-refresh``, or a run that rewrites at
   least ``BULK_SHARE`` of the stored rows, as a mode or model change does) drops the
   HNSW index first and builds it once at the end; incremental runs keep it live.
   Search keeps answering without the index (exact scans, slower).

Each run is recorded in ``analytics_features.embedding_runs``; per-chunk log lines go
to ``$PRODSEARCH_HOME/logs/embedding_pipeline.log``.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import psycopg

from prodsearch.catalog.lexical import ANALYZER_VERSION
from prodsearch.catalog.source import Source, load_source
from prodsearch.config import EncoderMode, Settings
from prodsearch.db import connect, database_url, hnsw, introspect, migrate, text_indexes
from prodsearch.db.names import INDEX_NAME
from prodsearch.db.retry import one_line
from prodsearch.embedding import lexical_sql, modes, querymap, runs_sql, store
from prodsearch.embedding.encoder import Encoder, cpu_threads, encoder_for
from prodsearch.embedding.pipeline import Pipeline, Progress
from prodsearch.embedding.plan import Plan, Work, plan_rows
from prodsearch.embedding.runlock import alive, take_lock
from prodsearch.embedding.runs import (
    RunStage,
    RunStatus,
    SyncOptions,
    SyncResult,
)
from prodsearch.errors import ProdsearchError
from prodsearch.suggest import build as suggest_build

if TYPE_CHECKING:
    from prodsearch.embedding.ray_engine import RayPipeline

__all__ = ["SyncOptions", "SyncResult", "prep_signature", "sync"]

# rewriting at least this share of the stored rows takes the bulk path (see _bulk): a
# live index costs ~6 ms of writing per row here, a rebuild ~0.7 ms per stored row
BULK_SHARE = 0.2
log = logging.getLogger("prodsearch.sync")
# set once: a run's INFO lines reach its log file (attached per run); the console handler
# that the CLI configures shows warnings and errors only
log.setLevel(logging.INFO)
PREP_VERSION = 2  # 2: lexical analysis in Python (Polish/English stems, folding)


def prep_signature(source: Source, settings: Settings) -> str:
    return (
        f"v{PREP_VERSION}.{ANALYZER_VERSION}|{','.join(source.text_columns)}|{','.join(source.search_columns)}|"
        f"{','.join(source.code_columns)}|{settings.max_chars}|{settings.max_tokens}|"
    )


def _plan(
    conn: Any,
    source: Source,
    settings: Settings,
    encoder: Encoder,
    opts: SyncOptions,
    result: SyncResult,
) -> Plan:
    rows = store.candidates(
        conn,
        source,
        prep_signature(source, settings),
        encoder.model_name,
        encoder.mode,
        opts.full_refresh,
    )
    plan = plan_rows(
        rows,
        source.text_columns,
        settings.max_chars,
        encoder.model_name,
        encoder.mode,
        opts.full_refresh,
        opts.limit,
        encoder.hash_cap,
    )
    result.scanned, result.failed = plan.scanned, plan.failed
    result.to_embed = plan.rows
    result.deduplicated = plan.deduplicated
    result.skipped_unchanged = result.eligible - result.failed - plan.rows
    return plan


def _refresh_search_support(
    conn: Any,
    source: Source,
    encoder: Encoder,
    opts: SyncOptions,
    result: SyncResult,
    refreshed: bool,
    settings: Settings,
) -> None:
    """The term vocabulary (typo correction) and the completions (search-as-you-type)
    after any change to the full-text column, and the Polish→English query map when none
    exists for this model and mode."""
    t0 = time.perf_counter()
    if (
        result.written
        or result.deleted
        or refreshed
        or lexical_sql.count_terms(conn) == 0
        or suggest_build.count(conn) == 0
    ):
        terms = lexical_sql.rebuild_terms(conn)
        conn.commit()
        suggestions = suggest_build.rebuild(
            conn, source, suggest_build.SuggestColumns.from_settings(settings)
        )
        conn.commit()
        result.timings.terms_s = round(time.perf_counter() - t0, 3)
        log.info("run %s: %d search terms, %d suggestions", result.run_id, terms, suggestions)
    t0 = time.perf_counter()
    qmap, fitted = querymap.refresh(conn, source, encoder, force=opts.refit_map)
    conn.commit()
    if fitted:
        assert qmap is not None
        result.timings.query_map_s = round(time.perf_counter() - t0, 3)
        log.info("run %s: query map %s", result.run_id, qmap.details)


def _attach_log_file(settings: Settings) -> logging.Handler:
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(settings.logs_dir / "embedding_pipeline.log", encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    handler.setLevel(logging.INFO)
    log.addHandler(handler)
    return handler


def _bulk(to_write: int, stored: int, full_refresh: bool) -> bool:
    """Whether a run writes so much of the table that dropping the HNSW index and building
    it once at the end beats keeping it live (every written row is an index insert that
    competes with the encoder for the cores): a first load, ``--full-refresh``, or at
    least ``BULK_SHARE`` of the stored rows — a mode or model change rewrites them all."""
    return full_refresh or stored == 0 or to_write >= BULK_SHARE * stored


def sync(
    settings: Settings,
    opts: SyncOptions,
    progress: Progress | None = None,
    encoder: Encoder | None = None,
) -> SyncResult:
    """Run one sync; see the module docstring. Raises ProdsearchError on expected failures."""
    started = time.perf_counter()
    handler = _attach_log_file(settings)
    url = database_url(settings)
    conn = connect(url)
    result = SyncResult(dry_run=opts.dry_run)
    try:
        if opts.engine == "ray":  # before any work: say how to install it when missing
            from prodsearch.embedding.ray_engine import require_ray

            require_ray()
        migrate(conn)
        source = load_source(conn, settings)
        take_lock(conn, settings.lock_wait_s)
        mode = _settle_mode(conn, settings, opts, encoder, result)
        encoder = encoder or _load_encoder(settings, mode, opts, result)
        result.model = encoder.model_name
        _check_dimension(conn, encoder, opts)
        if not opts.dry_run:
            result.run_id = _start_run(conn, settings, source, encoder, opts)
        work, refreshed = _plan_step(conn, source, settings, encoder, opts, result)
        if progress is not None:
            progress("plan", result.to_embed, result.to_embed)
        if opts.dry_run:
            result.deleted = store.count_orphans(conn, source)
            result.embedded = len(work)
            result.status = "dry-run"
            return result
        _stage(conn, result, "delete")
        _delete_step(conn, source, result)
        _stage(conn, result, "embed")
        _embed_step(conn, url, source, encoder, opts, work, result, progress, settings)
        conn = alive(conn, url, settings.db_retry_s, settings.lock_wait_s)
        _stage(conn, result, "index")
        _index_step(conn, settings, result, progress)
        _stage(conn, result, "search support")
        _refresh_search_support(conn, source, encoder, opts, result, refreshed, settings)
        result.embeddings_after = store.count_embeddings(conn)
        _finish(conn, result, "succeeded", started)
        log.info("run %s succeeded: %s", result.run_id, result.as_dict())
        return result
    except BaseException as exc:
        status: RunStatus = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        if result.run_id is not None:
            try:
                if conn.broken or conn.closed:
                    conn = connect(url)
                conn.rollback()
                _finish(conn, result, status, started, error=str(exc) or type(exc).__name__)
            except Exception as record_exc:  # the original error matters more
                log.warning("could not record the run's outcome: %s", one_line(record_exc))
            log.error("run %s %s: %s", result.run_id, status, exc)
        result.status = status
        raise
    finally:
        conn.close()
        log.removeHandler(handler)
        handler.close()


def _stage(conn: psycopg.Connection[Any], result: SyncResult, stage: RunStage) -> None:
    """Record the step the run is entering (committed: visible to status and tests)."""
    assert result.run_id is not None
    runs_sql.update_run(conn, result.run_id, stage=stage)
    conn.commit()


def _settle_mode(
    conn: psycopg.Connection[Any],
    settings: Settings,
    opts: SyncOptions,
    encoder: Encoder | None,
    result: SyncResult,
) -> EncoderMode:
    """The catalog's encoder mode for this run (:mod:`prodsearch.embedding.modes`): the
    recorded one, or a new one recorded — a first embed, or an explicit switch."""
    requested, model_name = modes.request_of(settings, encoder)
    if encoder is None:
        requested = opts.mode  # --mode, or the settings' mode the CLI passed on
    choice = modes.settle(conn, requested, model_name, switch=True, write=not opts.dry_run)
    conn.commit()
    result.mode, result.mode_reason = choice.mode, choice.reason
    return choice.mode


def _load_encoder(
    settings: Settings, mode: EncoderMode, opts: SyncOptions, result: SyncResult
) -> Encoder:
    t0 = time.perf_counter()
    encoder = encoder_for(settings, mode, max_batch=opts.batch_size)
    result.timings.model_load_s = round(time.perf_counter() - t0, 3)
    return encoder


def _check_dimension(conn: psycopg.Connection[Any], encoder: Encoder, opts: SyncOptions) -> None:
    """A model of another dimension needs ``--full-refresh``, which empties the table."""
    table_dim = introspect.embedding_dim(conn)
    if table_dim == encoder.dim:
        return
    if not opts.full_refresh:
        raise ProdsearchError(
            f"the model makes {encoder.dim}-d vectors but the embeddings table holds "
            f"{table_dim}-d ones: run `prodsearch embed --full-refresh` to re-embed "
            "everything with the new dimension (the table is emptied first)"
        )
    if not opts.dry_run:
        hnsw.drop(conn)
        store.set_embedding_dim(conn, encoder.dim)
        conn.commit()


def _start_run(
    conn: psycopg.Connection[Any],
    settings: Settings,
    source: Source,
    encoder: Encoder,
    opts: SyncOptions,
) -> int:
    run_id = runs_sql.start_run(
        conn,
        encoder.mode,
        encoder.model_name,
        {
            "batch_size": encoder.max_batch,
            "limit": opts.limit,
            "full_refresh": opts.full_refresh,
            "chunk_size": opts.chunk_size,
            "text_fields": list(source.text_columns),
            "max_chars": settings.max_chars,
            "source": source.name,
            "index_type": settings.index_type,
        },
    )
    conn.commit()
    log.info("run %s started: mode %s, model %s", run_id, encoder.mode, encoder.model_name)
    return run_id


def _plan_step(
    conn: psycopg.Connection[Any],
    source: Source,
    settings: Settings,
    encoder: Encoder,
    opts: SyncOptions,
    result: SyncResult,
) -> tuple[list[Work], bool]:
    """The unique texts to embed; rows whose prepared text is unchanged get their raw hash
    refreshed (unless a dry run). Whether any was refreshed."""
    t0 = time.perf_counter()
    result.eligible = store.count_eligible(conn, source)
    plan = _plan(conn, source, settings, encoder, opts, result)
    if not opts.dry_run:
        store.refresh_source_hashes(conn, source, plan.refresh_ids, plan.refresh_hashes)
    conn.commit()
    result.timings.plan_s = round(time.perf_counter() - t0, 3)
    return plan.work, bool(plan.refresh_ids)


def _delete_step(conn: psycopg.Connection[Any], source: Source, result: SyncResult) -> None:
    t0 = time.perf_counter()
    result.deleted = store.delete_orphans(conn, source)
    conn.commit()
    result.timings.delete_s = round(time.perf_counter() - t0, 3)
    if result.deleted:
        log.info(
            "run %s: removed %d embeddings of deleted or missing products",
            result.run_id,
            result.deleted,
        )


def _embed_step(
    conn: psycopg.Connection[Any],
    url: str,
    source: Source,
    encoder: Encoder,
    opts: SyncOptions,
    work: list[Work],
    result: SyncResult,
    progress: Progress | None,
    settings: Settings,
) -> None:
    """Encode and write ``work``; a large rewrite drops the index first (the bulk path)."""
    assert result.run_id is not None
    stored = store.count_embeddings(conn)
    if work and _bulk(result.to_embed, stored, opts.full_refresh):
        # bulk load: the indexes are built once at the end instead of per row
        if hnsw.status(conn).exists:
            hnsw.drop(conn)
            result.index = "rebuilt"
        text_indexes.drop(conn)
    runs_sql.update_run(conn, result.run_id, eligible=result.eligible, scanned=result.scanned)
    conn.commit()
    if not work:
        return
    pipeline: Pipeline | RayPipeline
    if opts.engine == "ray":
        from prodsearch.embedding.ray_engine import RayPipeline

        pipeline = RayPipeline(
            work,
            settings,
            url,
            encoder.mode,
            opts.chunk_size,
            encoder.max_batch,
            result.run_id,
            progress,
            workers=opts.workers or cpu_threads(),
            address=opts.ray_address,
        )
    else:
        pipeline = Pipeline(
            work,
            encoder,
            url,
            source,
            opts.chunk_size,
            result.run_id,
            progress,
            retry_s=settings.db_retry_s,
        )
    try:
        pipeline.run()
    finally:
        counts = pipeline.counts
        result.written, result.embedded = counts.written, counts.embedded
        busy = counts.busy_s
        result.timings.tokenize_s = round(busy["tokenize"], 3)
        result.timings.encode_s = round(busy["encode"], 3)
        result.timings.write_s = round(busy["write"], 3)
        result.timings.pipeline_s = round(counts.wall_s, 3)
        result.batch_sizes = sorted(counts.batch_sizes)


def build_index(
    conn: psycopg.Connection[Any], settings: Settings, concurrently: bool = False
) -> float:
    """(Re)build the HNSW index as the settings say (shape, m, the build's and the later
    inserts' ef_construction), committed; seconds. ``concurrently`` (an autocommit
    connection): the index in place serves searches and takes writes until the new graph
    replaces it; otherwise both wait for the build."""
    if concurrently:
        started = time.perf_counter()
        hnsw.build_beside(
            conn,
            settings.index_type,
            settings.hnsw_m,
            settings.hnsw_ef_construction,
            insert_ef_construction=settings.hnsw_insert_ef_construction,
        )
        with conn.transaction():
            hnsw.swap_in(conn)
        hnsw.drop_retired(conn)
        return time.perf_counter() - started
    seconds = hnsw.build(
        conn,
        settings.index_type,
        settings.hnsw_m,
        settings.hnsw_ef_construction,
        insert_ef_construction=settings.hnsw_insert_ef_construction,
    )
    conn.commit()
    return seconds


def _index_step(
    conn: psycopg.Connection[Any],
    settings: Settings,
    result: SyncResult,
    progress: Progress | None,
) -> None:
    """Build the text indexes and the HNSW index when they are missing (first load, bulk
    path, a run killed after dropping them, dropped by hand)."""
    if text_indexes.missing(conn):
        result.timings.text_index_s = round(text_indexes.build(conn), 3)
        conn.commit()
    st = hnsw.status(conn)
    if st.exists:
        if hnsw.ensure_insert_ef(conn, st, settings.hnsw_insert_ef_construction):
            conn.commit()
        return
    if progress is not None:
        progress("index", 0, 1)
    seconds = build_index(conn, settings)
    result.timings.index_s = round(seconds, 3)
    if result.index != "rebuilt":  # dropped for a bulk load: say so
        result.index = "built"
    log.info("run %s: built %s in %.1f s", result.run_id, INDEX_NAME, seconds)


def _finish(
    conn: psycopg.Connection[Any],
    result: SyncResult,
    status: RunStatus,
    started: float,
    error: str | None = None,
) -> None:
    """Record the run's outcome in the runs table."""
    assert result.run_id is not None
    result.status = status
    result.timings.total_s = round(time.perf_counter() - started, 3)
    runs_sql.update_run(
        conn,
        result.run_id,
        status=status,
        error=error,
        **({"stage": "done"} if status == "succeeded" else {}),
        embedded=result.embedded,
        skipped_unchanged=result.skipped_unchanged,
        deduplicated=result.deduplicated,
        deleted=result.deleted,
        failed=result.failed,
        timings=result.timings.as_dict(),
    )
    conn.commit()
