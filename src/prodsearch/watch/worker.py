"""``prodsearch watch``: the worker that keeps embeddings in step with the catalog.

Wakes on ``LISTEN`` (a poll interval as the fallback), waits ``batch_ms`` for more
changes to gather, then takes up to ``batch_rows`` queued ids in one transaction:

1. the run lock, shared (many workers at once; none while an ``embed`` runs);
2. the ids leave the queue (``FOR UPDATE SKIP LOCKED``: workers never share an id);
3. embeddings of deleted or soft-deleted products among them are removed;
4. the rest are planned, encoded and written exactly as ``embed`` does (the same
   preparation, hashes, encoder and writer: :mod:`prodsearch.embedding.plan`);
5. the worker's counters are updated, and the transaction commits.

A killed worker rolls back: its ids are pending again. A lost connection is retried for
``PRODSEARCH_DB_RETRY_S``. Every ``reconcile_s`` the batch plan of ``embed`` runs (what
capture missed: triggers disabled, ``session_replication_role = replica``, changes
before install); every ``support_s`` the search support (typo vocabulary) is refreshed
when something changed. SIGTERM / SIGINT stop it after the batch in flight.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
import psycopg
from pgvector.psycopg import register_vector

from prodsearch.catalog.source import Source, load_source
from prodsearch.config import Settings
from prodsearch.db import connect, database_url, migrate
from prodsearch.db.nice import renice_backend
from prodsearch.db.retry import one_line, retry_db
from prodsearch.embedding import lexical_sql, modes, runs_sql, store
from prodsearch.embedding.encoder import Encoder, cpu_threads, encoder_for
from prodsearch.embedding.plan import Work, flatten, plan_rows
from prodsearch.embedding.sync import SyncOptions, prep_signature, sync
from prodsearch.errors import ConfigError, DatabaseUnavailable
from prodsearch.suggest import build as suggest_build
from prodsearch.watch import sql as watch_sql

log = logging.getLogger("prodsearch.watch")
log.setLevel(logging.INFO)

# lag from capture to committed embedding, seconds: the histogram's upper bounds (+Inf last)
LAG_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0, 60.0, 300.0)


@dataclass(frozen=True)
class WatchOptions:
    """One worker's knobs. The values come from the settings' ``watch_*`` fields
    (:meth:`from_settings`, where each is described); a command line or a test
    overrides some."""

    batch_rows: int  # ids per batch (one transaction)
    batch_ms: int  # after a wake-up, how long changes gather before a batch
    poll_s: float  # the fallback when no notification comes
    reconcile_s: float  # the embed plan, to catch what capture missed (0: never)
    support_s: float  # full vocabulary rebuild interval (only after changes)
    nice: int  # added to the process's CPU niceness when the worker starts
    max_tries: int  # a product whose write keeps failing is set aside after this many
    retry_s: float  # its first retry after this, doubling with each try
    once: bool = False  # drain the queue, then return (cron, tests)
    poll: bool = False  # no capture trigger: run the embed plan every poll_s instead

    @classmethod
    def from_settings(cls, settings: Settings, **overrides: Any) -> WatchOptions:
        opts = cls(
            batch_rows=settings.watch_batch_rows,
            batch_ms=settings.watch_batch_ms,
            poll_s=settings.watch_poll_s,
            reconcile_s=settings.watch_reconcile_s,
            support_s=settings.watch_support_s,
            nice=settings.watch_nice,
            max_tries=settings.watch_max_tries,
            retry_s=settings.watch_retry_s,
        )
        return replace(opts, **overrides)


@dataclass
class BatchResult:
    taken: int = 0
    written: int = 0  # rows with a new vector
    refreshed: int = 0  # rows whose prepared text was unchanged: hashes refreshed
    deleted: int = 0
    without_text: int = 0  # rows with no text after preparation: not embedded (logged)
    lags: list[float] = field(default_factory=list)
    seconds: float = 0.0
    plan_s: float = 0.0  # of which taking, removing the deleted and planning
    encode_s: float = 0.0  # … encoding
    write_s: float = 0.0  # … the upsert (HNSW inserts included; overlaps encoding)
    terms_s: float = 0.0  # … the new words and unnamed values for search support


@dataclass
class WatchTotals:
    batches: int = 0
    taken: int = 0
    written: int = 0
    refreshed: int = 0
    deleted: int = 0
    without_text: int = 0  # rows with no text after preparation: not embedded (logged)
    reconciliations: int = 0
    errors: int = 0
    failed: int = 0  # tries of single products that failed (see Worker._isolate)


def lag_histogram(lags: list[float]) -> list[int]:
    """Cumulative bucket counts of ``lags`` (one per LAG_BUCKETS bound, then +Inf)."""
    return [sum(lag <= bound for lag in lags) for bound in LAG_BUCKETS] + [len(lags)]


# Texts per encode → write step inside a batch: large steps keep both inference streams
# busy (a call of few texts leaves one idle at its end), the last steps small, because the
# last one's write is not overlapped with encoding (docs/BENCHMARKS.md, "The burst in
# large encode steps").
ENCODE_CHUNK = 512
LAST_CHUNK = 128


def chunk_sizes(n: int, big: int = ENCODE_CHUNK, last: int = LAST_CHUNK) -> list[int]:
    """A batch of ``n`` texts as encode steps: ``big`` while at least twice that is left,
    then halving down to ``last`` (2,048 → 512, 512, 512, 256, 128, 128)."""
    sizes: list[int] = []
    while n > 0:
        size = min(big, max(last, n // 2), n)
        sizes.append(size)
        n -= size
    return sizes


class Worker:
    def __init__(
        self, settings: Settings, opts: WatchOptions, encoder: Encoder | None = None
    ) -> None:
        self.settings, self.opts = settings, opts
        # Every core encodes, one single-threaded inference stream each, at the worker's
        # niceness: a search arriving takes a core from a stream without waiting for the
        # others (docs/BENCHMARKS.md, "bench freshness"). A batch's chunks are written
        # while the next ones encode, so a burst keeps the database busy too. Idle
        # inference threads do not busy-wait.
        threads = settings.watch_threads or cpu_threads()
        self.url = database_url(settings)
        self.mode = self._settle_mode(encoder)
        self.encoder_threads = threads
        self._given_encoder = encoder is not None
        self.encoder = encoder or encoder_for(settings, self.mode.mode, threads=threads, spin=False)
        self.name = f"{socket.gethostname()}:{os.getpid()}"
        self.stopping = threading.Event()
        self.totals = WatchTotals()
        self._conn: psycopg.Connection[Any] | None = None
        self._listen: psycopg.Connection[Any] | None = None
        self._writer: store.Writer | None = None
        self._source: Source | None = None
        self._signature = ""
        self._changed_since_support = False
        self._last_support = time.monotonic()
        self._last_reconcile = 0.0 if opts.reconcile_s > 0 else float("inf")
        self._periodic: threading.Thread | None = None
        self._suggest_columns = suggest_build.SuggestColumns.from_settings(settings)
        # Completions: values (folded) derived already, and values a batch met that no
        # completion names, waiting for the derivation beside the batches
        self._completed: set[str] = set()
        self._unnamed: set[str] = set()
        self._completion_lock = threading.Lock()
        self._last_retry_check = float("-inf")

    def _settle_mode(self, encoder: Encoder | None) -> modes.ModeInForce:
        """The catalog's recorded mode (recorded now if none was): a worker never writes
        vectors of another mode beside the catalog's (:class:`modes.ModeMismatch`)."""
        requested, model_name = modes.request_of(self.settings, encoder)
        with connect(self.url) as conn:
            migrate(conn)
            choice = modes.settle(conn, requested, model_name, switch=False)
            conn.commit()
        log.info("worker: encoder mode %s (%s)", choice.mode, choice.reason)
        return choice

    def _follow_mode(self, conn: psycopg.Connection[Any]) -> None:
        """After an ``embed`` switched the catalog's mode: a worker that was not told a mode
        loads the new one; one that was told another stops (:class:`modes.ModeMismatch`)."""
        row = modes.recorded(conn)
        if row is None or row.mode == self.encoder.mode:
            return
        if self.settings.mode != "auto" or self._given_encoder:
            raise modes.ModeMismatch(
                f"the catalog was switched to mode {row.mode}, but this worker is set to "
                f"{self.encoder.mode}: restart it with PRODSEARCH_MODE unset (auto) or "
                f"{row.mode}"
            )
        log.warning("worker %s: the catalog's mode is now %s: loading it", self.name, row.mode)
        self.mode = modes.in_force(conn, self.settings)
        self.encoder = encoder_for(
            self.settings, self.mode.mode, threads=self.encoder_threads, spin=False
        )

    # ------------------------------------------------------------ connections

    def _open(self) -> tuple[psycopg.Connection[Any], store.Writer, Source]:
        """The batch connection (with its writer) and the listening one, reopened after a
        database restart."""
        conn = self._conn
        if conn is None or conn.closed or conn.broken:
            self.close()
            conn = connect(self.url)
            migrate(conn)
            if not self.opts.poll and not watch_sql.queue_exists(conn):
                conn.close()
                raise ConfigError(
                    "change capture is not installed on this database: run `prodsearch watch "
                    "install` (or `prodsearch watch --poll` where no trigger can be installed)"
                )
            register_vector(conn)
            if renice_backend(conn, self.opts.nice):  # its HNSW inserts yield to searches too
                log.info(
                    "worker %s: database session %d at niceness +%d",
                    self.name,
                    conn.info.backend_pid,
                    self.opts.nice,
                )
            self._source = load_source(conn, self.settings)
            self._signature = prep_signature(self._source, self.settings)
            self._writer = store.Writer(conn, self.encoder.dim, self._source)
            if self.totals.batches == 0:
                watch_sql.start_worker(conn, self.name)
            conn.commit()
            self._conn = conn
            self._listening()
        assert self._writer is not None and self._source is not None
        return conn, self._writer, self._source

    def _listening(self) -> psycopg.Connection[Any] | None:
        """The LISTEN connection, reopened if a restart closed it (None: cannot connect)."""
        listen = self._listen
        if listen is not None and not listen.closed and not listen.broken:
            return listen
        if listen is not None:
            listen.close()
        try:
            self._listen = connect(self.url, autocommit=True)
            watch_sql.listen(self._listen)
        except (psycopg.OperationalError, DatabaseUnavailable):
            self._listen = None
        return self._listen

    def close(self) -> None:
        for c in (self._conn, self._listen):
            if c is not None:
                c.close()
        self._conn = self._listen = None
        self._writer = None

    # ------------------------------------------------------------ the loop

    def run(self) -> WatchTotals:
        """Until :meth:`stop` (or, with ``once``, until the queue is empty); a log line per
        batch in ``HOME/logs/watch.log``."""
        self.settings.logs_dir.mkdir(parents=True, exist_ok=True)
        handler = logging.FileHandler(self.settings.logs_dir / "watch.log", encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        handler.setLevel(logging.INFO)
        log.addHandler(handler)
        try:
            return self._run()
        finally:
            log.removeHandler(handler)
            handler.close()

    def _run(self) -> WatchTotals:
        if self.opts.nice and hasattr(os, "nice"):
            os.nice(self.opts.nice)  # searches on the same cores come first
        log.info(
            "worker %s: mode %s, batches of up to %d ids",
            self.name,
            self.encoder.mode,
            self.opts.batch_rows,
        )
        if self.opts.poll:
            return self._run_polling()
        try:
            while not self.stopping.is_set():
                self._maybe_reconcile()
                result = retry_db(self._batch, self.settings.db_retry_s, "embedding a batch")
                if result is None:  # an embed run holds the lock: wait for it
                    self.stopping.wait(1.0)
                    continue
                self._maybe_add_completions()
                if result.taken:
                    continue  # drain: more may be queued
                self._maybe_refresh_support()
                if self.opts.once:
                    break
                self._wait()
        finally:
            if self._periodic is not None:
                self._periodic.join()
            if self._changed_since_support:
                self._guarded(self._refresh_support)()
            self.close()
        return self.totals

    def stop(self) -> None:
        self.stopping.set()

    def _run_polling(self) -> WatchTotals:
        """Polling mode: the embed plan every ``poll_s`` (finds changes by their hashes)."""
        try:
            while not self.stopping.is_set():
                self.reconcile()
                if self.opts.once:
                    break
                self.stopping.wait(self.opts.poll_s)
        finally:
            self.close()
        return self.totals

    def _wait(self) -> None:
        """Until a notification (then ``batch_ms`` more, for changes to gather), the poll
        interval, or a stop."""
        deadline = time.monotonic() + self.opts.poll_s
        woke = False
        while not self.stopping.is_set() and not woke:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            listen = self._listening()
            if listen is None:  # the database is away: the poll interval, then a batch
                self.stopping.wait(left)
                return
            try:
                for _ in listen.notifies(timeout=min(left, 0.5), stop_after=1):
                    woke = True
            except psycopg.OperationalError:
                listen.close()  # reopened on the next pass
        if woke:
            time.sleep(self.opts.batch_ms / 1000)

    # ------------------------------------------------------------ one batch

    def _batch(self) -> BatchResult | None:
        """One transaction: take, delete what is gone, plan, encode, write, count."""
        conn, writer, source = self._open()
        started = time.perf_counter()
        out = BatchResult()
        taken: list[tuple[int, datetime]] = []
        if self._retries_due():  # committed on its own: a failing batch must not undo it
            with conn.transaction():
                watch_sql.requeue_due(conn)
        try:
            with conn.transaction():
                if not watch_sql.try_run_lock_shared(conn, runs_sql.SYNC_LOCK_KEY):
                    return None
                self._follow_mode(conn)  # an embed may have switched it (lock held: stable)
                taken = watch_sql.take(conn, self.opts.batch_rows)
                if not taken:
                    return out
                self._write_taken(conn, writer, source, taken, out, started)
        except (psycopg.OperationalError, modes.ModeMismatch):
            raise  # a lost connection: retried by the caller; a mode conflict: stops it
        except Exception as exc:
            self.totals.errors += 1
            log.error("worker %s: batch failed: %s", self.name, one_line(exc))
            try:
                watch_sql.record_error(conn, self.name)
                conn.commit()
            except psycopg.Error:
                conn.rollback()
            # the batch rolled back, its ids are queued again: each alone now, so one
            # product that cannot be written never holds up the changes behind it
            self._isolate([pid for pid, _at in taken])
            return out
        self._count(out)
        return out

    def _write_taken(
        self,
        conn: psycopg.Connection[Any],
        writer: store.Writer,
        source: Source,
        taken: list[tuple[int, datetime]],
        out: BatchResult,
        started: float,
    ) -> None:
        """In the caller's transaction: the taken ids' embeddings written (or removed),
        their failed entries cleared, the search support extended, the worker's counters
        recorded."""
        ids = [pid for pid, _at in taken]
        out.taken = len(ids)
        out.deleted = store.delete_orphans(conn, source, ids)
        out.written, out.refreshed = self._write(conn, writer, source, ids, out, started)
        watch_sql.clear_failures(conn, ids)  # written (or gone) at last
        if out.written or out.refreshed:  # new words are searchable at once
            t0 = time.perf_counter()
            lexical_sql.add_terms_of(conn, ids)
            # and a new brand, product type or vehicle is suggested within seconds
            self._note_unnamed(conn, source, ids)
            out.terms_s = time.perf_counter() - t0
        now = watch_sql.server_now(conn)
        out.lags = [_seconds(now, at) for _pid, at in taken]
        out.seconds = time.perf_counter() - started
        watch_sql.record_batch(
            conn,
            self.name,
            out.written,
            out.refreshed,
            out.deleted,
            lag_histogram(out.lags),
            sum(out.lags),
            len(out.lags),
            out.seconds,
        )

    def _retries_due(self) -> bool:
        """Whether to look for failed items due again (at most once a second)."""
        now = time.monotonic()
        if now - self._last_retry_check < min(1.0, self.opts.retry_s):
            return False
        self._last_retry_check = now
        return True

    def _isolate(self, ids: list[int]) -> None:
        """Write each id of a failed batch in its own transaction. One that fails again
        leaves the queue and is counted in the failed items: queued again after
        ``retry_s`` × 2^(tries − 1), set aside after ``max_tries`` (until `prodsearch watch
        retry` or a change to the product queues it)."""
        conn, writer, source = self._open()
        for pid in ids:
            out = BatchResult()
            started = time.perf_counter()
            try:
                with conn.transaction():
                    at = watch_sql.take_one(conn, pid)
                    if at is None:  # taken by another worker meanwhile
                        continue
                    self._write_taken(conn, writer, source, [(pid, at)], out, started)
            except psycopg.OperationalError:
                raise
            except Exception as exc:
                error = one_line(exc)
                with conn.transaction():
                    watch_sql.take_one(conn, pid)  # out of the queue: the rest flows on
                    tries = watch_sql.record_failure(
                        conn, pid, error, self.opts.max_tries, self.opts.retry_s
                    )
                self.totals.failed += 1
                log.warning(
                    "worker %s: product %d failed (try %d of %d%s): %s",
                    self.name,
                    pid,
                    tries,
                    self.opts.max_tries,
                    ", set aside" if tries >= self.opts.max_tries else "",
                    error,
                )
                continue
            self._count(out)

    def _write(
        self,
        conn: psycopg.Connection[Any],
        writer: store.Writer,
        source: Source,
        ids: list[int],
        out: BatchResult,
        started: float,
    ) -> tuple[int, int]:
        """Plan the taken ids as ``embed`` would, then encode and upsert; (rows written
        with a new vector, rows whose hashes were refreshed)."""
        enc = self.encoder
        candidates = store.candidates(
            conn, source, self._signature, enc.model_name, enc.mode, False, ids=ids
        )
        plan = plan_rows(
            candidates,
            source.text_columns,
            self.settings.max_chars,
            enc.model_name,
            enc.mode,
            max_tokens=enc.hash_cap,
        )
        store.refresh_source_hashes(conn, source, plan.refresh_ids, plan.refresh_hashes)
        out.without_text = plan.failed
        out.plan_s = time.perf_counter() - started
        return self._encode_and_write(plan.work, writer, out), len(plan.refresh_ids)

    def _encode_and_write(self, work: list[Work], writer: store.Writer, out: BatchResult) -> int:
        """Encode the batch's texts in chunks (:func:`chunk_sizes`), each written (on the
        batch's connection, in its transaction) by a helper thread while the next chunk
        encodes: a large batch's HNSW inserts overlap its encoding. Rows written."""
        enc = self.encoder
        written = 0

        def write(chunk: list[Work], vectors: np.ndarray) -> int:
            t0 = time.perf_counter()
            n = writer.write(*flatten(chunk, vectors), enc.model_name, enc.mode)
            out.write_s += time.perf_counter() - t0
            return n

        with ThreadPoolExecutor(1, thread_name_prefix="watch-write") as pool:
            pending: Future[int] | None = None
            start = 0
            for size in chunk_sizes(len(work)):
                chunk = work[start : start + size]
                start += size
                t0 = time.perf_counter()
                vectors = np.asarray(enc.encode([w.text for w in chunk]))
                out.encode_s += time.perf_counter() - t0
                if pending is not None:
                    written += pending.result()
                pending = pool.submit(write, chunk, vectors)
            if pending is not None:
                written += pending.result()
        return written

    def _count(self, out: BatchResult) -> None:
        t = self.totals
        t.batches += 1
        t.taken += out.taken
        t.written += out.written
        t.refreshed += out.refreshed
        t.deleted += out.deleted
        t.without_text += out.without_text
        if out.written or out.deleted or out.refreshed:
            self._changed_since_support = True
        log.info(
            "worker %s batch %d: %d ids, %d rows embedded, %d refreshed, %d embeddings removed, "
            "%.2f s (plan %.2f, encode %.2f, write %.2f, terms %.2f), lag max %.2f s",
            self.name,
            t.batches,
            out.taken,
            out.written,
            out.refreshed,
            out.deleted,
            out.seconds,
            out.plan_s,
            out.encode_s,
            out.write_s,
            out.terms_s,
            max(out.lags, default=0.0),
        )

    # ------------------------------------------------------------ completions

    def _note_unnamed(self, conn: psycopg.Connection[Any], source: Source, ids: list[int]) -> None:
        """Remember the batch's categories, brands and vehicles that no completion names
        (a cheap read). Deriving them takes the whole catalog (seconds at 278,697
        products), so it runs beside the batches, not inside one."""
        with self._completion_lock:
            checked = self._completed | self._unnamed
        found = suggest_build.unnamed(conn, source, self._suggest_columns, ids, checked)
        if found:
            with self._completion_lock:
                self._unnamed |= found

    def _maybe_add_completions(self) -> None:
        if not self._unnamed:
            return
        if self.opts.once:  # a single pass ends with its completions in place
            self._add_completions()
        else:
            self._aside(self._add_completions)

    def _add_completions(self) -> None:
        """The catalog's completions derived on a connection of its own, the missing ones
        added; every value of the catalog is then checked, so a value the derivation
        leaves out (too rare) is not derived again on each batch that meets it."""
        with self._completion_lock:
            waiting = set(self._unnamed)
        t0 = time.perf_counter()
        with connect(self.url) as conn:
            renice_backend(conn, self.opts.nice)
            with conn.transaction():
                source = load_source(conn, self.settings)
                added = suggest_build.add_missing(conn, source, self._suggest_columns)
        with self._completion_lock:
            self._completed |= added.values | waiting
            self._unnamed -= waiting
        log.info(
            "worker %s: %d completions added for %d new values in %.2f s",
            self.name,
            added.added,
            len(waiting),
            time.perf_counter() - t0,
        )

    # ------------------------------------------------------------ periodic work

    def _maybe_refresh_support(self) -> None:
        due = time.monotonic() - self._last_support >= self.opts.support_s
        if self._changed_since_support and due:
            self._aside(self._refresh_support)

    def _refresh_support(self) -> None:
        """The full rebuild of the typo vocabulary (document counts, words gone): seconds
        of database time at 278k products, so on a connection of its own, beside the
        batches. Words new to the catalog were added by their batches already."""
        self._changed_since_support = False
        self._last_support = time.monotonic()
        t0 = time.perf_counter()
        try:
            with connect(self.url) as conn:
                renice_backend(conn, self.opts.nice)
                terms = lexical_sql.rebuild_terms(conn)
                conn.commit()  # the swap is short: batches adding words wait for nothing else
                with conn.transaction():
                    source = load_source(conn, self.settings)
                    suggest_build.rebuild(conn, source, self._suggest_columns)
        except Exception:
            self._changed_since_support = True  # not refreshed: the next interval tries again
            raise
        log.info(
            "worker %s: %d search terms and the suggestions refreshed in %.2f s",
            self.name,
            terms,
            time.perf_counter() - t0,
        )

    def _maybe_reconcile(self) -> None:
        if time.monotonic() - self._last_reconcile < self.opts.reconcile_s:
            return
        self._last_reconcile = time.monotonic()
        if self.opts.once:  # a single pass: what reconciliation queues is drained too
            self.reconcile()
        else:
            self._aside(self.reconcile)

    def _aside(self, task: Callable[[], None]) -> None:
        """Periodic work on a thread of its own (one task at a time), so batches go on."""
        if self._periodic is not None and self._periodic.is_alive():
            return

        guarded = self._guarded(task)
        self._periodic = threading.Thread(target=guarded, name=task.__name__, daemon=True)
        self._periodic.start()

    def _guarded(self, task: Callable[[], None]) -> Callable[[], None]:
        """``task``, its failure logged and counted instead of raised: periodic work is
        retried at its next interval, and never stops the worker."""

        def guarded() -> None:
            try:
                task()
            except Exception as exc:
                self.totals.errors += 1
                log.error("worker %s: %s failed: %s", self.name, task.__name__, one_line(exc))

        return guarded

    def reconcile(self) -> None:
        """The embed plan, for what capture missed: the ids of missing, stale and orphaned
        embeddings are queued, and the batches take them as any change (no lock held, so
        nothing waits for the plan). Rows of another model or mode are left to a bulk
        ``embed`` (which rewrites them all at bulk speed), and the worker says so. In
        ``--poll`` mode (no queue) the plan runs as ``embed`` does instead."""
        enc = self.encoder
        with connect(self.url) as conn:
            renice_backend(conn, self.opts.nice)
            other = store.count_other_model_or_mode(conn, enc.model_name, enc.mode)
            if other:
                log.warning(
                    "worker %s: %d embeddings are of another model or mode than %s/%s: run "
                    "`prodsearch embed` to rewrite them (the worker does not)",
                    self.name,
                    other,
                    enc.model_name,
                    enc.mode,
                )
                return
            if not self.opts.poll:
                source = load_source(conn, self.settings)
                sig = prep_signature(source, self.settings)
                ids = store.stale_ids(conn, source, sig, enc.model_name, enc.mode)
                ids += store.orphan_ids(conn, source)
                queued = watch_sql.enqueue(conn, ids) if ids else 0
                watch_sql.record_reconciliation(conn, self.name)
                conn.commit()
                self.totals.reconciliations += 1
                log.info(
                    "worker %s: reconciliation queued %d products (capture had missed them)",
                    self.name,
                    queued,
                )
                return
        result = sync(self.settings, SyncOptions(mode=enc.mode), encoder=enc)
        self.totals.reconciliations += 1
        if result.written or result.deleted:
            self._changed_since_support = True
        log.info(
            "worker %s: reconciliation wrote %d rows, removed %d",
            self.name,
            result.written,
            result.deleted,
        )


def _seconds(now: datetime, then: datetime) -> float:
    return max(0.0, (now - then).total_seconds())
